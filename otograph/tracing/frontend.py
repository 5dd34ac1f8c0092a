"""``trace``: pick a frontend, get a shaped ``GraphModule``.

Both frontends emit a ``torch.fx.GraphModule`` whose nodes carry ``node.meta[META]`` (a
:class:`~otograph.tracing.values.TensorInfo` per tensor the node produced on the example inputs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from otograph.errors import TraceError, UnsupportedInput
from otograph.tracing.export import dynamic_axes, export_graph
from otograph.tracing.flops import FlopCount
from otograph.tracing.fx import fx_graph
from otograph.tracing.preserve import unchanged
from otograph.tracing.values import (
    FLOPS,
    META,
    SAME_SHAPE,
    eval_mode,
    flat_inputs,
    info_of,
    meta_state,
    normalize_inputs,
    run_fake,
    to_meta,
    unwrap,
)

__all__ = ["Traced", "trace", "record_shapes", "FRONTENDS", "DEFAULT_FRONTEND"]

log = logging.getLogger(__name__)

#: ``fx``: symbolic tracing (module structure kept); ``export``: ``torch.export`` (ATen ops, follows
#: data-dependent Python); ``auto``: fx, then export when fx fails to trace or its graph does not run.
FRONTENDS = ("fx", "export", "auto")
DEFAULT_FRONTEND = "fx"


@dataclass
class Traced:
    """A traced model: the ``GraphModule`` (sharing the model's parameters) and example inputs.

    Every node carries ``node.meta[META]``: a ``TensorInfo`` (or a tuple/list of them, or a plain
    Python value) describing what the node produced on the example inputs. ``frontend`` is the one
    that produced the graph (``"fx"`` or ``"export"``, also after ``"auto"``).
    """

    gm: fx.GraphModule
    args: tuple
    kwargs: dict
    frontend: str = DEFAULT_FRONTEND
    model: torch.nn.Module | None = field(default=None, repr=False)
    #: every parameter and buffer of the model when it was traced: name → shape
    tensor_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    #: per flat input (see ``flat_inputs``), the axes the graph leaves free (export frontend, dynamic
    #: shapes); None when the frontend does not say (fx: whatever the code allows)
    dynamic: tuple[tuple[int, ...], ...] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        n = len(self.gm.graph.nodes)
        return f"Traced({type(self.model).__name__ if self.model else 'GraphModule'}, {n} nodes, frontend={self.frontend})"


def trace(model: torch.nn.Module, example_inputs: Any, *, leaf_modules: Iterable = (),
          autowrap: Iterable[Callable] = (), frontend: str = DEFAULT_FRONTEND, dynamic_shapes: Any = "auto") -> Traced:
    """Trace ``model`` and record every node's shape on ``example_inputs``.

    ``leaf_modules`` (types or qualified names) are kept as single calls; ``autowrap`` functions
    are recorded as calls instead of being traced through (both fx only). ``dynamic_shapes`` (export
    only): ``"auto"`` leaves every axis the code allows free (batch, sequence length, image size),
    ``None`` fixes the example's shapes, anything else is passed to ``torch.export.export``. The graph
    is traced in eval mode; the model's modes are restored afterwards.

    Example:
        >>> import torch, otograph
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> t = otograph.trace(net, torch.randn(3, 4))
        >>> [n.op for n in t.gm.graph.nodes]
        ['placeholder', 'call_module', 'call_module', 'call_module', 'output']
    """
    if frontend not in FRONTENDS:
        raise UnsupportedInput(f"unknown frontend {frontend!r}; available: {', '.join(map(repr, FRONTENDS))}")
    model = unwrap(model)
    args, kwargs = normalize_inputs(example_inputs)
    if frontend == "auto":
        try:
            return trace(model, example_inputs, leaf_modules=leaf_modules, autowrap=autowrap, frontend="fx")
        except TraceError as e:
            log.info("fx tracing failed (%s); trying torch.export", str(e).splitlines()[0])
            return trace(model, example_inputs, frontend="export", dynamic_shapes=dynamic_shapes)
    with unchanged(model) as changes, eval_mode(model):
        dynamic = None
        if frontend == "export":
            gm = export_graph(model, args, kwargs, dynamic_shapes)
            dynamic = dynamic_axes(gm)
        else:
            gm = fx_graph(model, args, kwargs, leaf_modules=leaf_modules, autowrap=autowrap)
        shapes = {n: tuple(t.shape) for n, t in list(model.named_parameters(remove_duplicate=False))
                  + list(model.named_buffers(remove_duplicate=False))}
        traced = Traced(gm, args, kwargs, frontend, model, shapes, dynamic)
        try:
            record_shapes(traced)
        except Exception as e:  # noqa: BLE001 - a graph that does not run is a tracing failure
            raise TraceError(f"the graph {frontend} traced from {type(model).__name__} does not run on the example "
                             f"inputs: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                             op=type(model).__name__,
                             hint="use the other frontend (frontend='export' or 'auto')" if frontend == "fx" else
                             "check the example inputs match forward()") from e
    if changes.buffers and frontend == "fx":
        log.warning("forward updates the buffers %s in place; torch.fx does not record such updates, so the "
                    "compact model will not make them (the buffers were restored). Use frontend='export' to "
                    "keep them.", ", ".join(changes.buffers))
    return traced


class _Recorder(fx.Interpreter):
    """Stores every node's value structure (``META``) and its FLOPs (``FLOPS``, counted as
    ``torch.utils.flop_counter`` counts them, see :mod:`otograph.tracing.flops`)."""

    def __init__(self, gm: fx.GraphModule, counter: FlopCount):
        super().__init__(gm)
        self.counter = counter

    def run_node(self, n: fx.Node) -> Any:
        before = self.counter.total
        out = super().run_node(n)
        n.meta[META] = info_of(out)
        n.meta[FLOPS] = self.counter.total - before
        return out

    # ops whose output has their input's shape and no FLOPs: skipped (on meta tensors, norms and
    # some activations run Python decompositions that cost more than the rest of the pass)
    def call_module(self, target, args, kwargs):
        if self.shortcut and type(self.fetch_attr(target)) in SAME_SHAPE and _first_tensor(args):
            return args[0]
        return super().call_module(target, args, kwargs)

    def call_function(self, target, args, kwargs):
        if self.shortcut and _same_shape(target) and _first_tensor(args):
            return args[0]
        return super().call_function(target, args, kwargs)

    shortcut = False


def _first_tensor(args: tuple) -> bool:
    return bool(args) and isinstance(args[0], torch.Tensor) and args[0].device.type == "meta"


def _same_shape(target: Any) -> bool:
    try:
        return target in SAME_SHAPE or getattr(target, "overloadpacket", None) in SAME_SHAPE
    except TypeError:  # unhashable targets
        return False


def record_shapes(traced: Traced) -> None:
    """One pass of the example inputs through the graph (on meta tensors where every op allows it,
    else fake ones, else real ones): each node's shape in ``node.meta[META]`` and its FLOPs in
    ``node.meta[FLOPS]``. Autograd stays on, as in :func:`otograph.graph.cost.count_flops`, so fused
    inference fast paths do not hide FLOPs."""
    inputs = flat_inputs(traced.gm, traced.args, traced.kwargs)
    with torch.enable_grad():
        try:
            with meta_state(traced.gm), FlopCount() as counter:
                recorder = _Recorder(traced.gm, counter)
                recorder.shortcut = True
                recorder.run(*[to_meta(x) for x in inputs])
            return
        except Exception as e:  # noqa: BLE001 - an op without a meta kernel: fake tensors then
            log.debug("meta run failed (%s); recording on fake tensors", e)
        with FlopCount() as counter:
            run_fake(_Recorder(traced.gm, counter), inputs)
