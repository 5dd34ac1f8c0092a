"""What a rule's ``rewrite`` sees: one op's copy in the compact graph, and the plan around it.

Reading: ``arg`` (the original call's arguments by schema name), ``shape`` (a value's original
shape), ``keep``/``new_shape`` (which positions a value keeps), ``kept_rows`` (kept indices of a
parameter axis). Writing: ``set_arg`` (into the copy, where the call holds it), ``gather``
(index-select an operand along an axis), ``constant`` (a new buffer), ``align_operands`` (gather
operands no unit owns where they meet a shrinking axis), ``replace`` (the op's result is another new
node), ``replace_value`` (the op's tuple result becomes several new nodes), ``fail``.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.fx as fx

from otograph.errors import RewriteError
from otograph.graph.signature import Bound, bind
from otograph.tracing.values import META, TensorInfo

if TYPE_CHECKING:
    from otograph.rewrite.shrink import Builder

__all__ = ["Edit", "shape_of"]


def shape_of(x: Any) -> tuple[int, ...] | None:
    """The original shape of a traced value (None for non-tensors)."""
    info = x.meta.get(META) if isinstance(x, fx.Node) else None
    return info.shape if isinstance(info, TensorInfo) else None


class Edit:
    """The copy ``new`` of the traced node ``old`` in the compact graph being built."""

    def __init__(self, builder: Builder, old: fx.Node, new: fx.Node, kind: str):
        self._b = builder
        self.old, self.new, self.kind = old, new, kind
        self.module = builder.modules.get(old.target) if old.op == "call_module" else None
        self.args: Bound = bind(old, self.module)

    # ---- reading ------------------------------------------------------------------------------
    def arg(self, *names: str, default: Any = None) -> Any:
        for n in names:
            if n in self.args:
                return self.args[n]
        return default

    def new_arg(self, name: str) -> Any:
        """Argument ``name`` as the copy holds it (its nodes are the compact graph's)."""
        return self.args.read(self.new, name) if self.args.given(name) else self.args[name]

    @property
    def target_name(self) -> str:
        """The op's own name without namespace or overload: ``unbind`` for ``aten.unbind.int``."""
        t = self.old.target
        return (t if isinstance(t, str) else getattr(t, "__name__", str(t))).split(".")[0]

    @property
    def graph(self) -> fx.Graph:
        return self._b.graph

    @property
    def root(self) -> torch.nn.Module:
        """The compact model's module tree (parameters already sliced)."""
        return self._b.root

    def shape(self, x: Any = None) -> tuple[int, ...] | None:
        return shape_of(self.old if x is None else x)

    def keep(self, x: Any = None, i: int = 0) -> dict[int, np.ndarray]:
        """``{axis: kept-position mask}`` of an original value (default: this op's result)."""
        x = self.old if x is None else x
        return self._b.plan.keep(x, i) if isinstance(x, fx.Node) else {}

    def new_shape(self, x: Any = None) -> tuple[int, ...] | None:
        x = self.old if x is None else x
        shape = shape_of(x)
        return None if shape is None else self._b.plan.new_shape(x, shape)

    def kept_rows(self, param: str, axis: int) -> np.ndarray | None:
        """Kept indices along ``axis`` of parameter ``param``, or None when it does not shrink."""
        return self._b.plan.params.get((param, axis))

    def shrinks(self, module: str) -> bool:
        """Does any parameter of the submodule at path ``module`` lose positions?"""
        return any(name.startswith(module + ".") for name, _ in self._b.plan.params)

    def size_changes(self, x: Any) -> bool:
        """Is ``x``, a number computed in the graph from tensor sizes (``x.shape[1]``, ``H * W``),
        different in the compact graph, because it reads the size of an axis that shrinks?"""
        stack, seen = [x], set()
        while stack:
            n = stack.pop()
            if not isinstance(n, fx.Node) or n in seen or n.op in ("placeholder", "get_attr"):
                continue
            seen.add(n)
            read = _size_read(n)
            if read is not None:
                t, axes = read
                shape = shape_of(t)
                keep = self.keep(t)
                if shape is not None and any(a % len(shape) in keep for a in (range(len(shape)) if axes is None else axes)):
                    return True
                continue
            if isinstance(n.meta.get(META), TensorInfo):
                continue
            stack.extend(n.all_input_nodes)
        return False

    def is_param_value(self, x: Any) -> bool:
        """Is ``x`` a parameter seen directly (sliced in place, not gathered)?"""
        return x in self._b.plan.param_values

    def new_value(self, x: fx.Node) -> fx.Node:
        return self._b.env[x]

    # ---- writing ------------------------------------------------------------------------------
    def set_arg(self, name: str, value: Any) -> None:
        self.args.set(self.new, name, value)

    def fail(self, why: str) -> None:
        raise RewriteError(f"cannot rewrite {self.old.format_node()}: {why}", node=self.old, op=self.kind)

    def gather(self, x: fx.Node, axis: int, keep: np.ndarray) -> None:
        """Feed this op ``x`` index-selected to the kept positions ``keep`` (a mask) along ``axis``."""
        cur = self._b.env[x]
        for u in self.new.all_input_nodes:  # an earlier gather of the same operand
            if u.meta.get("otograph_gather_of") is x:
                cur = u
        with self.graph.inserting_before(self.new):
            g = self.graph.call_function(torch.index_select, (cur, axis, self._b.keep_index(keep)))
        g.meta["otograph_gather_of"] = x
        self.new.replace_input_with(cur, g)

    def align_operands(self, operands: Iterable[Any], skip_axis: int | None = None) -> None:
        """Operands are gathered along every shrinking axis of the result they are broadcast against
        (except ``skip_axis``) where they keep more: wholly when no unit owns the axis (inputs,
        buffers, constants), or down to the result's positions when the operand owns only some of
        them (a concatenation of an input and a prunable output, multiplied by a gate that lost
        positions of the input's part)."""
        out_shape = shape_of(self.old)
        if out_shape is None:
            return
        keep = self.keep()
        for x in operands:
            shp = shape_of(x)
            if shp is None or self.is_param_value(x):
                continue
            off = len(out_shape) - len(shp)
            for a, k in keep.items():
                if a == skip_axis or a < off or shp[a - off] == 1:
                    continue
                self.align(x, a - off, k)

    def align(self, x: fx.Node, axis: int, keep: np.ndarray) -> None:
        """Gather operand ``x`` along its ``axis`` to the result's kept positions ``keep`` (a mask
        over the original positions), from whatever ``x`` itself already keeps there."""
        mine = self.keep(x).get(axis)
        if mine is None:
            self.gather(x, axis, keep)
        elif not np.array_equal(mine, keep):
            if not np.all(mine[keep]):
                self.fail(f"operand {x} lost positions its result keeps on axis {axis}")
            self.gather(x, axis, keep[mine])

    def constant(self, values: np.ndarray) -> fx.Node:
        """A new constant of the compact model (a buffer), read where the graph is being edited."""
        return self._b.constant(values)

    def replace(self, node: fx.Node) -> None:
        """Later ops read ``node`` (built from the copy's operands, or from the copy itself) instead of
        the copy; a copy nobody reads any more is removed with the dead code."""
        self._b.env[self.old] = node

    def replace_value(self, parts: tuple) -> None:
        """This op's tuple result becomes ``parts`` (new nodes or None); the copy is erased."""
        self.graph.erase_node(self.new)
        self._b.env[self.old] = None
        self._b.tuples[self.old] = parts


def _shape_of_tensor(n: fx.Node) -> fx.Node | None:
    """The tensor whose whole shape ``n`` is (``t.shape``, ``t.size()``), else None."""
    if n.op == "call_function" and n.target is getattr and n.args[1:] == ("shape",):
        return n.args[0]
    if n.op == "call_method" and n.target == "size" and len(n.args) == 1 and not n.kwargs:
        return n.args[0]
    return None


def _size_read(n: fx.Node) -> tuple[fx.Node, list[int] | None] | None:
    """``(tensor, axes)`` when ``n`` reads sizes of a tensor (``None``: every axis), else None."""
    whole = _shape_of_tensor(n)
    if whole is not None:
        return whole, None
    if n.op == "call_function" and n.target is operator.getitem and isinstance(n.args[0], fx.Node):
        t, i = _shape_of_tensor(n.args[0]), n.args[1]
        if t is not None and isinstance(i, int):
            return t, [i]
        if t is not None and isinstance(i, slice) and shape_of(t) is not None:
            return t, list(range(len(shape_of(t))))[i]
    dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
    if ((n.op == "call_method" and n.target == "size") or n.target is torch.ops.aten.sym_size.int) and isinstance(
            dim, int):
        return n.args[0], [dim]
    return None
