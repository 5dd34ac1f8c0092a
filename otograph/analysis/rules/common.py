"""Helpers shared by rule families: broadcasting joins and per-axis views of slots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from otograph.analysis.slots import Slot

__all__ = ["join", "merge_ids", "pad_left", "pass_through", "axis_ids", "norm_axis", "sliced", "whole_axis",
           "zero_of"]


def norm_axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


def pad_left(arr: np.ndarray, ndim: int) -> np.ndarray:
    return arr.reshape((1,) * (ndim - arr.ndim) + arr.shape)


def axis_ids(ids: np.ndarray, axis: int, size: int) -> np.ndarray:
    """One element per position along ``axis`` (the first along the other axes), shape ``(size,)``."""
    moved = np.moveaxis(ids, axis, 0).reshape(ids.shape[axis], -1)[:, 0]
    return np.broadcast_to(moved, (size,)).copy()


def merge_ids(call, arrays: Sequence[np.ndarray], shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Broadcast element arrays together: aligned positions are one element (unioned); the
    result holds the first owner of each position."""
    shape = shape or np.broadcast_shapes(*[a.shape for a in arrays])
    ids = np.broadcast_to(arrays[0], shape).copy()
    for a in arrays[1:]:
        a = np.broadcast_to(a, shape)
        call.union(ids, a)
        ids = np.where(ids >= 0, ids, a)
    return ids


def join(call, operands: Sequence[Any], zero_mode: str) -> Slot:
    """Elementwise op over broadcast operands: aligned positions are one element.

    ``zero_mode`` is ``"and"`` (sum-like: zero only if every operand is zero), ``"or"``
    (product-like: zero if any operand is zero) or ``"first"`` (zero iff the first is).
    """
    out_shape = call.out_shape
    if out_shape is None:
        return Slot()
    nd = len(out_shape)
    arrays, zeros, pax_ops = [], [], []
    crossed = _crossed(call, operands, nd) if zero_mode == "or" else ()
    for x in operands:
        s, shp = call.slot(x), call.shape(x)
        if any(x is c for c in crossed):
            zeros.append(np.array(False))  # pinned: never zeroed
        elif s.ids is not None:
            arrays.append(pad_left(s.ids, nd))
            zeros.append(pad_left(s.zero, nd))
        elif s.pax is not None:
            pax_ops.append(((None,) * (nd - len(s.pax)) + tuple(s.pax), s, len(zeros)))
            zeros.append(np.array(s.pzero))  # refined below: only where its rows join the result's units
        elif shp is None and isinstance(x, (int, float, bool)):
            zeros.append(np.array(x == 0))
        else:
            zeros.append(np.array(False))
    if not arrays:
        tensor_ops = [x for x in operands if call.shape(x) is not None]
        if len(pax_ops) == 1 and len(tensor_ops) == 1:  # a parameter and scalars: still the parameter
            pax, s, _ = pax_ops[0]
            return Slot(pax=pax, pnames=s.pnames, pzero=bool(_combine(zero_mode, zeros)))
        for _, s, _ in pax_ops:
            call.pin_slot(s, f"parameter {s.pnames[0]} is combined with other constants in {call.name}")
        return Slot()
    bshape = np.broadcast_shapes(*[a.shape for a in arrays])
    ids = merge_ids(call, arrays, bshape)
    for pax, _, k in pax_ops:
        if zero_mode == "or" and _shared_across(pax, bshape):
            _param_axes_whole(call, ids, bshape, pax)
            zeros[k] = np.array(False)  # the parameter keeps every position: never zeroed
            continue
        attached = False
        for ax, p in enumerate(pax):
            if p is None:
                continue
            if bshape[ax] > 1:
                slab = np.moveaxis(np.broadcast_to(ids, bshape), ax, 0).reshape(bshape[ax], -1)
                call.union(p[:, None], slab)
                if zero_mode == "or":  # a product is zero wherever the row is: the row owns unowned positions
                    ids = np.where(ids >= 0, ids, p.reshape([-1 if a == ax else 1 for a in range(nd)]))
                attached = True
            # else: the parameter varies along an axis with no channel structure (e.g. tokens)
        # the parameter is zero once *its* units are: that says something only where its rows joined
        # the result's units (positions no unit owns would claim a zero nothing removes)
        zeros[k] = np.logical_and(zeros[k], ids >= 0) if attached else np.array(False)
    zero = _combine(zero_mode, [np.broadcast_to(z, bshape) for z in zeros])
    return Slot(ids, np.array(zero))


def whole_axis(call, ids: np.ndarray, axis: int, reason: str) -> None:
    """No unit may remove part of ``axis``: each fiber along it lies inside one unit (a unit then
    removes whole fibers, i.e. positions of the other axes, and ``axis`` keeps its size)."""
    call.require_one_unit(np.moveaxis(ids, axis, -1).reshape(-1, ids.shape[axis]), reason)


def _shared_across(pax: tuple, bshape: tuple[int, ...]) -> bool:
    """Does a parameter scale a value that also varies along axes the parameter is broadcast over
    (one ``head_dim`` weight for every head: Qwen3's and Gemma3's per-head q/k norms)?"""
    mine = {ax for ax, p in enumerate(pax) if p is not None and bshape[ax] > 1}
    return bool(mine) and any(n > 1 and ax not in mine for ax, n in enumerate(bshape))


def _param_axes_whole(call, ids: np.ndarray, bshape: tuple[int, ...], pax: tuple) -> None:
    """A product by a parameter shared across other axes: the value's axes the parameter covers stay
    whole (each fiber along them lies in one unit), so units are slabs along the other axes (heads)
    and the parameter keeps every position. Zero stays zero through the product."""
    axes = [ax for ax, p in enumerate(pax) if p is not None and bshape[ax] > 1]
    full = np.broadcast_to(ids, bshape)
    rest = [a for a in range(len(bshape)) if a not in axes]
    fibers = np.moveaxis(full, axes, list(range(len(rest), len(bshape)))).reshape(-1, int(np.prod([bshape[a] for a in axes])))
    call.require_one_unit(fibers, "is scaled by a parameter shared across other axes by")


def zero_of(call, x: Any, nd: int) -> np.ndarray:
    """Where operand ``x`` is exactly zero once its units are zeroed (rank ``nd``, broadcastable)."""
    s = call.slot(x)
    if s.ids is not None:
        return pad_left(s.zero, nd)
    if s.pax is not None:
        return np.full((1,) * nd, s.pzero)
    return np.full((1,) * nd, call.shape(x) is None and isinstance(x, (int, float, bool)) and x == 0)


def _crossed(call, operands: Sequence[Any], nd: int) -> list:
    """A product of operands structured along different axes (gMLP's ``u * gate(v)ᵀ``: channels
    times tokens): the one with the most elements keeps its structure; one varying along none of
    its axes is pinned instead of merging every position of both into a single unit."""
    ops = [(x, call.slot(x).ids) for x in operands]
    ops = [(x, pad_left(i, nd)) for x, i in ops if i is not None and i.size > 1]
    if len(ops) < 2:
        return []
    varying = [{a for a in range(nd) if i.shape[a] > 1} for _, i in ops]
    if all(u & v for k, u in enumerate(varying) for v in varying[k + 1:]):
        return []  # every operand shares an axis with every other: nothing crosses
    lead, ids = max(ops, key=lambda o: np.unique(o[1][o[1] >= 0]).size)
    axes = {a for a in range(nd) if ids.shape[a] > 1}
    out = [x for x, i in ops if x is not lead and not axes & {a for a in range(nd) if i.shape[a] > 1}]
    for x in out:
        call.pin(call.slot(x).ids, f"multiplies a space structured along other axes in {call.name}")
    return out


def _combine(zero_mode: str, zeros: list) -> np.ndarray:
    if zero_mode == "and":
        return np.logical_and.reduce(zeros)
    if zero_mode == "or":
        return np.logical_or.reduce(zeros)
    return np.array(zeros[0]).copy()


def pass_through(call, x: Any, zero: bool | None) -> Slot:
    """Same slots as ``x`` (an elementwise op); ``zero`` True/False forces the zero flags, None keeps
    them. A parameter operand stays a parameter (its elements, zeroed with their units or not)."""
    s = call.slot(x)
    if s.pax is not None:
        return Slot(pax=s.pax, pnames=s.pnames, pzero=s.pzero if zero is None else zero)
    if s.ids is None:
        return Slot()
    z = s.zero if zero is None else np.full(s.ids.shape, zero)
    return Slot(s.ids, z)


def sliced(call, s: Slot, index: tuple) -> Slot:
    """``s[index]`` (basic indexing). A slice that is empty keeps one position instead: an empty
    tensor has no values, but its other axes (heads) still shrink with their units, and a slot
    with no elements would say nothing about them. A slice that cuts one element out of a channel
    axis (one position, or positions sharing one element) keeps it: such an axis reads as
    broadcast, so its removal could not be followed; a strided slice keeps its axis whole (a stride
    cannot name the kept positions), which still lets units that are slabs along other axes (heads,
    for rotary halves) go."""
    fixed, ax = [], 0
    for i in index:
        if isinstance(i, slice) and ax < s.ids.ndim and s.ids.shape[ax] > 0:
            n = len(range(*i.indices(s.ids.shape[ax])))
            if i.step not in (None, 1) and s.ids.shape[ax] > 1:
                whole_axis(call, s.ids, ax, "is sliced with a stride along a channel axis by")
            if n == 0:
                i = slice(0, 1)
            elif s.ids.shape[ax] > 1:
                piece = np.moveaxis(s.ids[(slice(None),) * ax + (i,)], ax, 0)
                if (piece == piece[:1]).all():  # one element along the axis: it reads as broadcast
                    call.require_kept(piece.reshape(1, -1), "is sliced to a piece of one element along a channel "
                                                            "axis by")
        fixed.append(i)
        ax += i is not None
    t = tuple(fixed)
    zero = np.broadcast_to(s.zero, s.ids.shape)
    return Slot(np.ascontiguousarray(s.ids[t]), np.ascontiguousarray(zero[t]))
