"""Layout ops: slots are permuted, merged or split along with the data.

Reshapes are exact by construction: the element array is broadcast to the input's shape and
reshaped like the data, so a merged axis C×H×W maps channel *c* to its H·W positions and a
split D → (heads, head_dim) gives a two-level structure.
"""

from __future__ import annotations

import operator

import numpy as np
import torch

from otograph.analysis.rules.common import norm_axis, pad_left
from otograph.analysis.rules.registry import register
from otograph.analysis.slots import Slot

RESHAPES = [torch.reshape, torch.flatten, torch.squeeze, torch.unsqueeze, torch.unflatten,
            "method:view", "method:reshape", "method:flatten", "method:squeeze", "method:unsqueeze",
            "method:unflatten", "method:view_as", "method:reshape_as", torch.nn.Flatten,
            torch.nn.Unflatten]


def _pax_reshape(in_shape, out_shape, pax):
    """Map per-axis parameter elements through a reshape that only adds/removes size-1 axes."""
    src = [(n, p) for n, p in zip(in_shape, pax, strict=False) if n != 1]
    dst = [n for n in out_shape if n != 1]
    if [n for n, _ in src] != dst:
        return None
    it = iter(p for _, p in src)
    return tuple(next(it) if n != 1 else None for n in out_shape)


@register("reshape", "layout", RESHAPES, accepts_params=True)
def _reshape(call):
    x = call.arg(0, "input")
    s, in_shape, out_shape = call.slot(x), call.shape(x), call.out_shape
    if s.pax is not None:
        pax = _pax_reshape(in_shape, out_shape, s.pax)
        if pax is None:
            call.pin_slot(s, f"parameter {s.pnames[0]} is reshaped by {call.name}")
            call.set_out(Slot())
        else:
            call.set_out(Slot(pax=pax, pnames=s.pnames, pzero=s.pzero))
        return
    if s.ids is None:
        call.set_out(Slot())
        return
    ishape, oshape = list(in_shape), list(out_shape)
    if s.ids.shape[0] == 1 and ishape and oshape and ishape[0] == oshape[0]:
        ishape[0] = oshape[0] = 1  # batch kept as is: no need to materialise it
    ids = np.broadcast_to(s.ids, ishape).reshape(oshape)
    zero = np.broadcast_to(s.zero, ishape).reshape(oshape)
    call.set_out(Slot(ids, zero))


def _permute_slot(s: Slot, dims) -> Slot:
    if s.pax is not None:
        return Slot(pax=tuple(s.pax[d] for d in dims), pnames=s.pnames, pzero=s.pzero)
    if s.ids is None:
        return Slot()
    return Slot(np.transpose(s.ids, dims), np.transpose(s.zero, dims))


@register("permute", "layout", [torch.permute, "method:permute"], accepts_params=True)
def _permute(call):
    x = call.arg(0, "input")
    dims = call.node.args[1:] if call.node.op == "call_method" else call.arg(1, "dims")
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    nd = len(call.shape(x))
    call.set_out(_permute_slot(call.slot(x), [norm_axis(d, nd) for d in dims]))


@register("transpose", "layout", [torch.transpose, "method:transpose", torch.t, "method:t",
                                  torch.swapaxes, "method:swapaxes", "method:mT"], accepts_params=True)
def _transpose(call):
    x = call.arg(0, "input")
    nd = len(call.shape(x))
    name = getattr(call.node.target, "__name__", call.node.target).split(".")[0]
    if name in ("t", "mT") or nd < 2 and call.arg(1) is None:
        a, b = nd - 2, nd - 1
    else:
        a, b = norm_axis(call.arg(1, "dim0"), nd), norm_axis(call.arg(2, "dim1"), nd)
    dims = list(range(nd))
    dims[a], dims[b] = dims[b], dims[a]
    call.set_out(_permute_slot(call.slot(x), dims))


@register("expand", "layout", ["method:expand", "method:expand_as", torch.broadcast_to,
                               "method:broadcast_to", "method:contiguous", torch.Tensor.contiguous],
          accepts_params=True)
def _expand(call):
    x = call.arg(0, "input")
    s, nd = call.slot(x), len(call.out_shape)
    if s.pax is not None:
        call.set_out(Slot(pax=(None,) * (nd - len(s.pax)) + tuple(s.pax), pnames=s.pnames, pzero=s.pzero))
    elif s.ids is None:
        call.set_out(Slot())
    else:
        call.set_out(Slot(pad_left(s.ids, nd), pad_left(s.zero, nd)))


def expand_index(idx, ndim: int) -> tuple:
    """``x[idx]``'s index as a tuple with ``...`` spelled out as full slices."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    if Ellipsis in idx:
        n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
        k = idx.index(Ellipsis)
        idx = idx[:k] + (slice(None),) * (ndim - n_real) + idx[k + 1:]
    return idx


def index_slot(call, s: Slot, shape, idx) -> Slot | None:
    """Slot of ``x[idx]`` for basic indexing (ints, slices, None, Ellipsis); None if unsupported."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(isinstance(i, (torch.fx.Node, list, torch.Tensor)) for i in idx):
        return None
    idx = expand_index(idx, len(shape))
    idx = idx + (slice(None),) * (len(shape) - sum(1 for i in idx if i is not None))
    ids, zero = s.ids, s.zero
    out_ids, out_zero, ax = ids, zero, 0
    for i in idx:
        if i is None:
            out_ids, out_zero = np.expand_dims(out_ids, ax), np.expand_dims(out_zero, ax)
            ax += 1
        elif isinstance(i, int):
            j = 0 if out_ids.shape[ax] == 1 else i  # a broadcast axis has one entry for all
            out_ids, out_zero = np.take(out_ids, j, axis=ax), np.take(out_zero, j, axis=ax)
        elif isinstance(i, slice):
            if out_ids.shape[ax] > 1:
                sl = (slice(None),) * ax + (i,)
                out_ids, out_zero = out_ids[sl], out_zero[sl]
            ax += 1
        else:
            return None
    return Slot(np.ascontiguousarray(out_ids), np.ascontiguousarray(out_zero))


@register("getitem", "layout", [operator.getitem])
def _getitem(call):
    x, idx = call.arg(0), call.arg(1)
    stored = call.an.slots.get(x) if isinstance(x, torch.fx.Node) else None
    if isinstance(stored, (tuple, list)):
        if isinstance(idx, int):
            call.set_out(stored[idx])
        else:
            call.set_out(tuple(stored[idx]))
        return
    s, shape = call.slot(x), call.shape(x)
    if shape is None or s.ids is None:
        call.set_out(Slot())
        return
    out = index_slot(call, s, shape, idx)
    if out is None:
        call.pin(s.ids, f"is indexed with tensors by {call.name}")
        call.set_out(Slot())
        return
    call.set_out(out)


@register("roll", "layout", [torch.roll, "method:roll", torch.ops.aten.roll])
def _roll(call):
    """A cyclic shift: positions move along the rolled axes; other axes pass through."""
    x = call.arg(0, "input")
    s, nd = call.slot(x), len(call.shape(x))
    dims = call.arg(2, "dims")
    dims = [dims] if isinstance(dims, int) else list(dims or range(nd))
    axes = [norm_axis(d, nd) for d in dims] if dims else list(range(nd))
    if s.ids is None:
        call.set_out(Slot())
    elif any(s.ids.shape[a] > 1 for a in axes):
        call.pin(s.ids, f"is rolled along a channel axis by {call.name}")
        call.set_out(Slot())
    else:
        call.set_out(Slot(s.ids, s.zero))
