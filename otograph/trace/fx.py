"""The fx frontend: ``torch.fx`` symbolic tracing plus recorded shapes."""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch.utils._pytree import tree_map

from otograph.errors import TraceError, UnsupportedInput

__all__ = ["Traced", "trace", "normalize_inputs", "META"]

log = logging.getLogger(__name__)

#: ``node.meta`` key holding the example value's structure: ``torch.Size``/dtype per tensor.
META = "otograph_val"


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclass
class Traced:
    """A traced model: the ``GraphModule`` (sharing the model's parameters) and example inputs.

    Every node carries ``node.meta["otograph_val"]``: a ``TensorInfo`` (or a tuple/list of them,
    or a plain Python value) describing what the node produced on the example inputs.
    """

    gm: fx.GraphModule
    args: tuple
    kwargs: dict
    frontend: str = "fx"
    model: torch.nn.Module | None = field(default=None, repr=False)

    def to_networkx(self):
        from otograph.graph.depgraph import to_networkx

        return to_networkx(self)

    def __repr__(self) -> str:
        n = len(self.gm.graph.nodes)
        return f"Traced({type(self.model).__name__ if self.model else 'GraphModule'}, {n} nodes, frontend={self.frontend})"


def normalize_inputs(example_inputs: Any) -> tuple[tuple, dict]:
    """Tensor, tuple/list of tensors, or dict of keyword inputs → ``(args, kwargs)``."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, Mapping):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    raise UnsupportedInput(
        f"example_inputs must be a tensor, a tuple of inputs or a dict of keyword inputs, "
        f"not {type(example_inputs).__name__}")


class _Tracer(fx.Tracer):
    def __init__(self, leaf_modules: Iterable, autowrap: Iterable[Callable]):
        super().__init__(autowrap_functions=tuple(f for f in autowrap if callable(f)))
        self._leaf_types = tuple(t for t in leaf_modules if isinstance(t, type))
        self._leaf_names = {t for t in leaf_modules if isinstance(t, str)}
        self.current_module = ""
        self.failed_module: str | None = None

    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        if isinstance(m, self._leaf_types) or qualname in self._leaf_names:
            return True
        return super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        prev = self.current_module
        self.current_module = self.path_of_module(m)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_module is None:  # the innermost module is the one to name
                self.failed_module = self.current_module
            raise
        finally:
            self.current_module = prev


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Trace in eval mode (the graph is specialised to it), restore the caller's modes after."""
    modes = {m: m.training for m in model.modules()}
    for m in modes:  # not model.eval(): exported (unlifted) modules refuse it
        m.training = False
    try:
        yield
    finally:
        for m, t in modes.items():
            m.training = t


def trace(model: torch.nn.Module, example_inputs: Any, *, leaf_modules: Iterable = (),
          autowrap: Iterable[Callable] = (), frontend: str = "fx") -> Traced:
    """Trace ``model`` with ``torch.fx`` and record every node's shape on ``example_inputs``.

    ``leaf_modules`` (types or qualified names) are kept as single calls; ``autowrap`` functions
    are recorded as calls instead of being traced through. The model is not modified.

    Example:
        >>> import torch, otograph
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> t = otograph.trace(net, torch.randn(3, 4))
        >>> [n.op for n in t.gm.graph.nodes]
        ['placeholder', 'call_module', 'call_module', 'call_module', 'output']
    """
    if frontend not in ("fx", "export", "auto"):
        raise UnsupportedInput(f"unknown frontend {frontend!r}; available: 'fx', 'export', 'auto'")
    args, kwargs = normalize_inputs(example_inputs)
    if frontend == "auto":
        try:
            return trace(model, example_inputs, leaf_modules=leaf_modules, autowrap=autowrap, frontend="fx")
        except TraceError as e:
            log.info("fx tracing failed (%s); trying torch.export", str(e).splitlines()[0])
            return trace(model, example_inputs, frontend="export")
    if frontend == "export":
        from otograph.trace.export import export_graph

        with eval_mode(model):
            gm = export_graph(model, args, kwargs)
        traced = Traced(gm, args, kwargs, "export", model)
        record_shapes(traced)
        return traced
    tracer = _Tracer(leaf_modules, autowrap)
    concrete = _concrete_args(model, args, kwargs)
    with eval_mode(model):
        try:
            graph = tracer.trace(model, concrete_args=concrete or None)
        except Exception as e:  # noqa: BLE001 - re-raised with the module and the fix
            where = tracer.failed_module or "<root>"
            raise TraceError(
                f"torch.fx could not trace {type(model).__name__} inside module {where!r}: "
                f"{type(e).__name__}: {e}\n"
                f"Fix: declare it a leaf (trace(..., leaf_modules=[{where!r}]) or its class), "
                f"or wrap the offending function (autowrap=[fn]), or use the export frontend "
                f"(frontend='export' or 'auto').\n"
                f"{''.join(traceback.format_exception_only(type(e), e)).strip()}") from e
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    traced = Traced(gm, args, kwargs, "fx", model)
    with eval_mode(model):
        record_shapes(traced)
    return traced


def _concrete_args(model, args, kwargs) -> dict:
    """Forward parameters the caller did not give are fixed to their defaults."""
    import inspect

    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return {}
    params = [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    given = {p.name for p in params[: len(args)]} | set(kwargs)
    return {p.name: p.default for p in params if p.name not in given and p.default is not p.empty}


def _info(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return TensorInfo(tuple(v.shape), v.dtype)
    return v


class _Recorder(fx.Interpreter):
    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        n.meta[META] = tree_map(_info, out) if isinstance(out, (tuple, list, dict)) else _info(out)
        return out


@torch.no_grad()
def record_shapes(traced: Traced) -> None:
    """Run the example inputs through the graph and store each node's shape in ``node.meta``."""
    run_fake(_Recorder(traced.gm), flat_inputs(traced.gm, traced.args, traced.kwargs))


def flat_inputs(gm: fx.GraphModule, args: tuple, kwargs: dict) -> list:
    """Values for the graph's placeholders, in order (handles pytree-flattened exported graphs)."""
    info = getattr(gm.graph._codegen, "pytree_info", None)
    if info is not None and info.in_spec is not None:
        import torch.fx._pytree as fx_pytree

        return list(fx_pytree.tree_flatten_spec((args, kwargs), info.in_spec))
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    args = list(args)
    for n in placeholders[len(args):]:
        if n.target in kwargs:
            args.append(kwargs[n.target])
        elif n.args:
            args.append(n.args[0])
        else:
            raise UnsupportedInput(f"no example value for input {n.target!r}")
    return args


@contextlib.contextmanager
def fake_mode():
    """Shapes without compute: run under a FakeTensorMode that accepts the real parameters."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        yield mode


def run_fake(interp: fx.Interpreter, inputs: list) -> Any:
    """Run ``interp`` on fake copies of ``inputs``; falls back to real tensors if an op refuses."""
    try:
        with fake_mode() as mode:
            fake = [mode.from_tensor(t) if isinstance(t, torch.Tensor) else t for t in inputs]
            return interp.run(*fake)
    except Exception as e:  # noqa: BLE001 - data-dependent ops cannot run on fake tensors
        if type(e).__name__ in ("RewriteError",):
            raise
        log.debug("fake run failed (%s); running for real", e)
        return interp.run(*inputs)
