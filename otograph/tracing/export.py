"""The export frontend: ``torch.export`` (non-strict) for models symbolic tracing cannot follow.

The exported program is unlifted back into a ``GraphModule`` whose parameters are ``get_attr``
nodes under their original names and whose calls are ATen ops; the op registry maps those ops to
the same canonical kinds as the fx frontend (``aten.linear`` → ``linear``), so one rule serves both.

Shapes are dynamic by default (``dynamic_shapes="auto"``): every axis of every tensor input is
``Dim.AUTO``, so ``torch.export`` keeps symbolic what the code leaves free (batch, sequence length,
image size) and specialises the rest (channels, hidden sizes). The graph, and the compact model built
from it, then run at other batch sizes and sequence lengths. Should the dynamic export fail, the
static one is used (logged).

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    >>> gm = export_graph(net, (torch.randn(2, 3, 8, 8),), {})
    >>> dynamic_axes(gm)                     # batch, height, width; channels are fixed by the conv
    ((0, 2, 3),)
    >>> gm(torch.randn(5, 3, 11, 9)).shape
    torch.Size([5, 4])
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import operator
from collections.abc import Iterator
from typing import Any

import torch
import torch.fx as fx
from torch.fx.experimental.symbolic_shapes import is_concrete_int
from torch.utils._pytree import tree_leaves, tree_map

from otograph.errors import TraceError

__all__ = ["export_graph", "auto_dynamic_shapes", "dynamic_axes"]

log = logging.getLogger(__name__)


def auto_dynamic_shapes(model: torch.nn.Module, args: tuple, kwargs: dict) -> dict[str, Any]:
    """``dynamic_shapes`` for ``torch.export``, by ``forward``'s parameter names: ``Dim.AUTO`` on every
    axis of every tensor input."""
    auto = torch.export.Dim.AUTO

    def one(x: Any) -> Any:
        return {a: auto for a in range(x.ndim)} if isinstance(x, torch.Tensor) and x.ndim else None

    bound = inspect.signature(model.forward).bind(*args, **kwargs).arguments
    return {name: tree_map(one, v) for name, v in bound.items()}


def dynamic_axes(gm: fx.GraphModule) -> tuple[tuple[int, ...], ...]:
    """The symbolic axes of each placeholder of an exported graph (``()`` for a static input)."""
    out = []
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            val = n.meta.get("val")
            shape = val.shape if isinstance(val, torch.Tensor) else ()
            out.append(tuple(a for a, d in enumerate(shape) if not is_concrete_int(d)))
    return tuple(out)


_MARKS = ("_dynamo_", "_has_dynamo_")  # attributes torch.export's dynamic dims leave on a tensor


@contextlib.contextmanager
def _dim_marks_restored(args: tuple, kwargs: dict) -> Iterator[None]:
    """Leave the example tensors as they came: a failed ``torch.export`` can leave dynamo's dynamic-dim
    marks on them, and a later export of the same tensors (our static fallback, the user's own) then
    treats those axes as dynamic again and fails the same way."""
    tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    before = [{k: v for k, v in vars(t).items() if k.startswith(_MARKS)} for t in tensors]
    try:
        yield
    finally:
        for t, kept in zip(tensors, before, strict=True):
            for k in [k for k in vars(t) if k.startswith(_MARKS)]:
                delattr(t, k)
            for k, v in kept.items():
                setattr(t, k, v)


def _export(model: torch.nn.Module, args: tuple, kwargs: dict, dynamic_shapes: Any) -> torch.export.ExportedProgram:
    if isinstance(dynamic_shapes, str) and dynamic_shapes == "auto":
        try:
            with _dim_marks_restored(args, kwargs):
                return torch.export.export(model, args, kwargs,
                                           dynamic_shapes=auto_dynamic_shapes(model, args, kwargs), strict=False)
        except Exception as e:  # noqa: BLE001 - a static graph is still a valid trace
            log.info("export with dynamic shapes failed (%s); exporting for the example's shapes",
                     str(e).splitlines()[0] if str(e) else type(e).__name__)
        dynamic_shapes = None
    return torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes, strict=False)


def export_graph(model: torch.nn.Module, args: tuple, kwargs: dict,
                 dynamic_shapes: Any = "auto") -> fx.GraphModule:
    """``torch.export.export(strict=False)`` unlifted to a ``GraphModule`` without input guards.

    ``dynamic_shapes``: ``"auto"`` (every input axis ``Dim.AUTO``, falling back to static shapes),
    ``None`` (the example's shapes), or a spec as ``torch.export.export`` takes it.
    """
    try:
        with _custom_backwards() as seen:
            ep = _export(model, args, kwargs, dynamic_shapes)
    except Exception as e:  # noqa: BLE001 - re-raised with the fix
        first = str(e).splitlines()[0] if str(e) else ""
        raise TraceError(f"torch.export could not export {type(model).__name__}: {type(e).__name__}: {first}",
                         op=type(model).__name__,
                         hint="check the example inputs match forward(); for Hugging Face models pass "
                              "use_cache=False") from e
    if seen:
        names = ", ".join(sorted(seen))
        raise TraceError(f"torch.export inlines the forward of the custom autograd function {names}: the "
                         f"compact model would compute other gradients than {names}.backward", op=names,
                         hint="use the fx frontend (frontend='fx'), which keeps each such function as one "
                              "call with its own backward")
    gm = ep.module()
    for node in list(gm.graph.nodes):  # input guards of the unlifted module: not part of the model
        if node.op == "call_module" and node.target == "_guards_fn" and not node.users:
            gm.graph.erase_node(node)
    if hasattr(gm, "_guards_fn"):
        delattr(gm, "_guards_fn")
    _inline_grad_mode_regions(gm)
    gm.graph.lint()
    gm.recompile()
    return gm


@contextlib.contextmanager
def _custom_backwards() -> Iterator[set[str]]:
    """The names of the user-defined ``autograd.Function`` classes (with their own ``backward``)
    applied while the block runs."""
    function = torch.autograd.function.Function
    orig_apply = function.__dict__["apply"]
    seen: set[str] = set()

    def apply(cls, *args, **kwargs):
        if cls.backward is not function.backward and not cls.__module__.startswith("torch."):
            seen.add(cls.__qualname__)
        return orig_apply.__get__(None, cls)(*args, **kwargs)

    function.apply = classmethod(apply)
    try:
        yield seen
    finally:
        function.apply = orig_apply


def _inline_grad_mode_regions(gm: fx.GraphModule) -> None:
    """``torch.no_grad()`` blocks come out of ``torch.export`` as ``wrap_with_set_grad_enabled(mode,
    submodule, *args)`` calls; inline each as grad-mode switches around the submodule's ops, so the
    analysis sees the ops (an opaque call would pin every space it touches) and the compact model
    keeps the region."""
    g = gm.graph
    for node in list(g.nodes):
        if node.op != "call_function" or getattr(node.target, "__name__", "") != "wrap_with_set_grad_enabled":
            continue
        mode, sub_node, *operands = node.args
        with g.inserting_before(node):
            prev = g.call_function(torch.is_grad_enabled)
            g.call_function(torch._C._set_grad_enabled, (mode,))
            result = _copy_body(gm, sub_node.target, operands)
            g.call_function(torch._C._set_grad_enabled, (prev,))
        for user in list(node.users):  # getitem(hop, i) → the i-th result
            if user.target is operator.getitem and isinstance(result, (tuple, list)):
                user.replace_all_uses_with(result[user.args[1]])
                g.erase_node(user)
        if node.users:
            node.replace_all_uses_with(result)
        g.erase_node(node)
        if not sub_node.users:
            g.erase_node(sub_node)
            delattr(gm, sub_node.target)


def _copy_body(gm: fx.GraphModule, name: str, operands: list) -> object:
    """Copy submodule ``name``'s ops into ``gm``'s graph at the insertion point; returns its result."""
    sub = getattr(gm, name)
    env: dict[fx.Node, object] = {}
    inputs = iter(operands)
    result = None
    for n in sub.graph.nodes:
        if n.op == "placeholder":
            env[n] = next(inputs)
        elif n.op == "output":
            result = fx.map_arg(n.args[0], env.__getitem__)
        elif n.op == "get_attr":  # a constant of the submodule: hoisted into the parent
            attr = f"{name}_{n.target}".replace(".", "_")
            setattr(gm, attr, getattr(sub, n.target))
            env[n] = gm.graph.get_attr(attr)
        else:
            env[n] = gm.graph.node_copy(n, env.__getitem__)
    return result
