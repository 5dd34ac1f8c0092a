"""Composition: concatenation with offsets, and the sub-ranges taken by split/chunk/narrow."""

from __future__ import annotations

import numpy as np
import torch

from otograph.analysis.rules.common import join, norm_axis
from otograph.analysis.rules.registry import register
from otograph.analysis.slots import Slot
from otograph.tracing.values import META


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


@register("cat", "composition", [torch.cat, torch.concat, torch.concatenate], accepts_params=True)
def _cat(call):
    xs = list(call.arg(0, "tensors"))
    axis = norm_axis(call.arg(1, "dim", 0), len(call.out_shape))
    call.set_out(_cat_slot(call, xs, axis))


@register("stack", "composition", [torch.stack], accepts_params=False)
def _stack(call):
    xs = list(call.arg(0, "tensors"))
    nd = len(call.out_shape)
    axis = norm_axis(call.arg(1, "dim", 0), nd)
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
            out.append(Slot(s.ids[sl].copy(), s.zero[sl].copy()))
        start += n
    return tuple(out)


def _out_sizes(call, axis: int) -> list[int]:
    return [t.shape[axis] for t in call.node.meta[META]]


@register("split", "composition", [torch.split, "method:split", torch.chunk, "method:chunk",
                                   torch.tensor_split, "method:tensor_split", torch.unbind,
                                   "method:unbind"])
def _split(call):
    x = call.arg(0, "input")
    nd = len(call.shape(x))
    target = call.node.target
    name = getattr(target, "__name__", target).split(".")[0]
    if name in ("unbind",):
        axis = norm_axis(call.arg(1, "dim", 0), nd)
        s = call.slot(x)
        n = call.shape(x)[axis]
        if s.ids is None:
            call.set_out(tuple(Slot() for _ in range(n)))
            return
        call.set_out(tuple(
            Slot(np.take(s.ids, i if s.ids.shape[axis] > 1 else 0, axis),
                 np.take(s.zero, i if s.zero.shape[axis] > 1 else 0, axis)) for i in range(n)))
        return
    axis = norm_axis(call.arg(2, "dim", 0), nd)
    call.set_out(_pieces(call, x, axis, _out_sizes(call, axis)))


@register("narrow", "composition", [torch.narrow, "method:narrow"])
def _narrow(call):
    x = call.arg(0, "input")
    nd = len(call.shape(x))
    axis = norm_axis(call.arg(1, "dim"), nd)
    start, length = call.arg(2, "start"), call.arg(3, "length")
    s = call.slot(x)
    if s.ids is None or s.ids.shape[axis] == 1:
        call.set_out(Slot(s.ids, s.zero) if s.ids is not None else Slot())
        return
    sl = (slice(None),) * axis + (slice(start, start + length),)
    call.set_out(Slot(s.ids[sl].copy(), s.zero[sl].copy()))
