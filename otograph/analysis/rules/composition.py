"""Composition: concatenation with offsets, and the sub-ranges taken by split/chunk/narrow/unbind."""

from __future__ import annotations

import collections

import numpy as np
import torch

from otograph.analysis.registry import rule
from otograph.analysis.rules.common import join, norm_axis, sliced
from otograph.analysis.slots import Slot
from otograph.tracing.values import META

composition = rule("composition")
aten = torch.ops.aten


def _cat_slot(call, xs, axis: int) -> Slot:
    out_shape = call.out_shape
    nd = len(out_shape)
    slots = [call.slot(x) for x in xs]
    if all(s.ids is None and s.pax is None for s in slots):
        return Slot()
    varies = any(s.ids is not None and s.ids.shape[axis] > 1 for s in slots)
    if not varies:
        # concatenating along an axis without channel structure (tokens, batch): the other
        # axes are aligned across the inputs, like an elementwise join
        return join(call, xs, "and")
    for s in slots:
        if s.pax is not None:
            call.pin_slot(s, f"parameter {s.pnames[0]} is concatenated along a channel axis by {call.name}")
    other = [s.ids.shape[:axis] + s.ids.shape[axis + 1:] for s in slots if s.ids is not None]
    rest = np.broadcast_shapes(*other)
    parts_i, parts_z = [], []
    for x, s in zip(xs, slots, strict=False):
        n = call.shape(x)[axis]
        shape = rest[:axis] + (n,) + rest[axis:]
        if s.ids is None:
            parts_i.append(np.full(shape, -1, np.int64))
            parts_z.append(np.zeros(shape, bool))
        else:
            parts_i.append(np.broadcast_to(s.ids, shape))
            parts_z.append(np.broadcast_to(s.zero, shape))
    assert len(rest) + 1 == nd
    return Slot(np.concatenate(parts_i, axis), np.concatenate(parts_z, axis))


def _rewrite_cat(edit) -> None:
    xs = edit.arg("tensors")
    if isinstance(xs, (list, tuple)):  # else one sequence value: the call is opaque
        edit.align_operands(list(xs), skip_axis=edit.arg("dim", "axis", default=0) % len(edit.shape()))


def _operands(call) -> list | None:
    """The tensors joined, or ``None`` (after making the call opaque) when they arrive as one value
    computed by another op, e.g. ``torch.stack(x.unbind(1))``: its pieces are not separate operands."""
    xs = call.arg("tensors")
    if isinstance(xs, (list, tuple)):
        return list(xs)
    call.opaque(f"{call.target_name} of a sequence computed by another op (write the tensors out as a list)")
    return None


@composition("cat", [torch.cat, torch.concat, torch.concatenate, aten.cat], rewrite=_rewrite_cat,
             accepts_params=True)
def _cat(call):
    xs = _operands(call)
    if xs is None:
        return
    axis = norm_axis(call.arg("dim", "axis", default=0), len(call.out_shape))
    call.set_out(_cat_slot(call, xs, axis))


def _rewrite_stack(edit) -> None:
    """Every input is one slice of the result along the new axis: each keeps the result's positions."""
    xs, nd = edit.arg("tensors"), len(edit.shape())
    if not isinstance(xs, (list, tuple)):  # one sequence value: the call is opaque
        return
    dim = edit.arg("dim", default=0) % nd
    for x in xs:
        if edit.shape(x) is None or edit.is_param_value(x):
            continue
        for a, k in edit.keep().items():
            if a != dim:
                edit.align(x, a if a < dim else a - 1, k)


@composition("stack", [torch.stack, aten.stack], rewrite=_rewrite_stack)
def _stack(call):
    xs = _operands(call)
    if xs is None:
        return
    nd = len(call.out_shape)
    axis = norm_axis(call.arg("dim", default=0), nd)
    # stack == unsqueeze each input, then concatenate along the new axis (never a channel axis)
    slots = []
    for x in xs:
        s = call.slot(x)
        slots.append(Slot(np.expand_dims(s.ids, axis), np.expand_dims(s.zero, axis)) if s.ids is not None else s)
    fake = _Stacked(call, xs, slots)
    call.set_out(join(fake, xs, "and"))


class _Stacked:
    """A view of a call whose operands are the unsqueezed inputs (for stack)."""

    def __init__(self, call, xs, slots):
        self._call, self._map = call, {id(x): s for x, s in zip(xs, slots, strict=False)}
        self.out_shape = call.out_shape

    def slot(self, x):
        return self._map[id(x)]

    def shape(self, x):
        shp = self._call.shape(x)
        return None if shp is None else shp

    def __getattr__(self, name):
        return getattr(self._call, name)


def _pieces(call, x, axis: int, sizes: list[int]) -> tuple:
    s = call.slot(x)
    out = []
    start = 0
    for n in sizes:
        if s.ids is None:
            out.append(Slot())
        elif s.ids.shape[axis] == 1:
            out.append(Slot(s.ids, s.zero))
        else:
            sl = (slice(None),) * axis + (slice(start, start + n),)
            out.append(sliced(call, s, sl))
            call.require_kept(out[-1].ids.reshape(1, -1), "is a piece that must keep a position, split by")
        start += n
    return tuple(out)


def _rewrite_split(edit) -> None:
    x = edit.arg("input")
    xk = edit.keep(x)
    if not xk:
        return
    nd = len(edit.shape(x))
    dim = edit.arg("dim", default=0) % nd
    if edit.target_name == "unbind":
        if dim in xk:
            edit.fail("unbind over a shrinking axis")
        return
    if dim not in xk:
        return
    k, sizes, start = xk[dim], [], 0
    for t in edit.old.meta[META]:
        n = t.shape[dim]
        sizes.append(int(k[start:start + n].sum()))
        start += n
    if any(s == 0 for s in sizes):
        edit.fail("a piece would be empty")
    new = edit.new
    new.target = torch.split if new.op == "call_function" else "split"
    new.args, new.kwargs = (new.args[0], sizes, dim), {}


@composition("split", [torch.split, "method:split", torch.chunk, "method:chunk", torch.tensor_split,
                       "method:tensor_split", torch.unbind, "method:unbind", aten.split, aten.split_with_sizes,
                       aten.chunk, aten.unbind], rewrite=_rewrite_split)
def _split(call):
    x = call.arg("input")
    nd = len(call.shape(x))
    axis = norm_axis(call.arg("dim", default=0), nd)
    if call.target_name == "unbind":
        s = call.slot(x)
        n = call.shape(x)[axis]
        if s.ids is None:
            call.set_out(tuple(Slot() for _ in range(n)))
            return
        if s.ids.shape[axis] > 1:  # a piece must never go whole: each fiber across the pieces is one unit
            call.require_one_unit(np.moveaxis(s.ids, axis, -1).reshape(-1, n), "is unbound, one tensor per "
                                  "position, by")
        call.set_out(tuple(
            Slot(np.take(s.ids, i if s.ids.shape[axis] > 1 else 0, axis),
                 np.take(s.zero, i if s.zero.shape[axis] > 1 else 0, axis)) for i in range(n)))
        return
    call.set_out(_pieces(call, x, axis, [shape[axis] for shape in call.out_shapes]))


def _rewrite_narrow(edit) -> None:
    x, dim, start, length = edit.arg("input"), edit.arg("dim"), edit.arg("start"), edit.arg("length")
    keep = edit.keep(x).get(dim % len(edit.shape(x)))
    if keep is None:
        return
    if not isinstance(start, int) or not isinstance(length, int):
        edit.fail("dynamic bounds on a shrinking axis")
    edit.set_arg("start", int(keep[:start].sum()))
    edit.set_arg("length", int(keep[start:start + length].sum()))


@composition("narrow", [torch.narrow, "method:narrow", aten.narrow], rewrite=_rewrite_narrow)
def _narrow(call):
    x = call.arg("input")
    nd = len(call.shape(x))
    axis = norm_axis(call.arg("dim"), nd)
    start, length = call.arg("start"), call.arg("length")
    s = call.slot(x)
    if s.ids is None or s.ids.shape[axis] == 1:
        call.set_out(Slot(s.ids, s.zero) if s.ids is not None else Slot())
        return
    sl = (slice(None),) * axis + (slice(start, start + length),)
    call.set_out(sliced(call, s, sl))


@composition("mapping", [collections.OrderedDict])
def _mapping(call):
    """``OrderedDict([("out", a), ("0", b)])`` (how the fx frontend keeps an ``OrderedDict``
    output): its values, each with its own slots."""
    call.set_out(tuple(call.value(v) for _, v in call.node.args[0]))
