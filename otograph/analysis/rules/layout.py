"""Layout ops: slots are permuted, merged or split along with the data.

Reshapes are exact by construction: the element array is broadcast to the input's shape and
reshaped like the data, so a merged axis C×H×W maps channel *c* to its H·W positions and a
split D → (heads, head_dim) gives a two-level structure.
"""

from __future__ import annotations

import operator

import numpy as np
import torch

from otograph.analysis.registry import rule
from otograph.analysis.rules.common import norm_axis, pad_left, sliced
from otograph.analysis.slots import Slot
from otograph.tracing.values import META, TensorInfo

layout = rule("layout")
aten = torch.ops.aten

RESHAPES = [torch.reshape, torch.flatten, torch.squeeze, torch.unsqueeze, torch.unflatten,
            "method:view", "method:reshape", "method:flatten", "method:squeeze", "method:unsqueeze",
            "method:unflatten", "method:view_as", "method:reshape_as", torch.nn.Flatten,
            torch.nn.Unflatten, aten.view, aten.reshape, aten._unsafe_view, aten.unsqueeze, aten.squeeze,
            aten.flatten, aten.unflatten]


def _sizes(v) -> list:
    return list(v) if isinstance(v, (tuple, list)) else [v]


def _rewrite_sizes(edit, name: str) -> None:
    """Sizes written in the code (``view``/``reshape``/``expand``) follow the shrinking axes.

    Channel sizes are static: one computed at run time (``x.shape[2]``) may come from a tensor
    that does not shrink, so it is replaced by the constant; so is one read from a shrinking axis
    of another tensor (``x.shape[1]`` for an axis that keeps its size). Other computed sizes (the
    batch) stay computed."""
    keep, shape = edit.keep(), edit.shape()
    if shape is None or name not in edit.args:
        return
    old, sizes = _sizes(edit.arg(name)), _sizes(edit.new_arg(name))
    if len(sizes) == 1 != len(shape) and isinstance(sizes[0], torch.fx.Node):  # one tuple built in the graph
        old, sizes = _spelled_out(edit, old[0], sizes[0], keep)
        if sizes is None:
            return
    if not keep and not any(edit.size_changes(v) for v in old):
        return
    if len(sizes) != len(shape):
        edit.fail("its size arguments do not match its output's axes")
    new_shape = edit.new_shape()
    for a in range(len(sizes)):
        if (a in keep and old[a] != -1) or (a not in keep and edit.size_changes(old[a])):
            sizes[a] = new_shape[a]
    edit.set_arg(name, tuple(sizes))


def _spelled_out(edit, old: torch.fx.Node, new: torch.fx.Node, keep: dict) -> tuple[list, list | None]:
    """Sizes computed in the graph as one tuple (``x.shape[:-1] + (-1,)``): ``(old, None)`` when
    nothing needs changing (every shrinking axis is inferred, ``-1``, and no entry reads a shrinking
    size), else one entry per axis read from the tuple, to be fixed one by one."""
    value = old.meta.get(META)
    if not isinstance(value, (tuple, list)) or len(value) != len(edit.shape()):
        return [old], [new]
    changes = edit.size_changes(old)
    if all(value[a] == -1 for a in keep) and not changes:
        return [old], None
    if changes:  # which entry reads the shrinking size is not known: every entry is fixed
        return ([value[a] if a in keep else old for a in range(len(value))],
                [-1 if a in keep and value[a] == -1 else None for a in range(len(value))])
    with edit.graph.inserting_before(edit.new):
        return list(value), [edit.graph.call_function(operator.getitem, (new, i)) for i in range(len(value))]


def _rewrite_reshape(edit) -> None:
    if edit.module is not None:
        return
    if "sizes" in edit.args:  # unflatten(x, dim, sizes): the output's axes dim … dim+len(sizes)-1
        if not edit.keep():
            return
        d = edit.arg("dim") % len(edit.shape(edit.arg("input")))
        new_shape = edit.new_shape()
        sizes = [s if s == -1 else new_shape[d + i] for i, s in enumerate(_sizes(edit.new_arg("sizes")))]
        edit.set_arg("sizes", tuple(sizes))
    else:
        _rewrite_sizes(edit, "size" if "size" in edit.args else "shape")


def _pax_reshape(in_shape, out_shape, pax):
    """Map per-axis parameter elements through a reshape that only adds/removes size-1 axes."""
    src = [(n, p) for n, p in zip(in_shape, pax, strict=False) if n != 1]
    dst = [n for n in out_shape if n != 1]
    if [n for n, _ in src] != dst:
        return None
    it = iter(p for _, p in src)
    return tuple(next(it) if n != 1 else None for n in out_shape)


@layout("reshape", RESHAPES, rewrite=_rewrite_reshape, accepts_params=True)
def _reshape(call):
    x = call.arg("input")
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
    call.set_out(s.moved(ids, zero))


def permute_slot(s: Slot, dims) -> Slot:
    if s.pax is not None:
        return Slot(pax=tuple(s.pax[d] for d in dims), pnames=s.pnames, pzero=s.pzero)
    if s.ids is None:
        return Slot()
    return s.moved(np.transpose(s.ids, dims), np.transpose(s.zero, dims))


@layout("permute", [torch.permute, "method:permute", aten.permute], accepts_params=True)
def _permute(call):
    x = call.arg("input")
    dims = _sizes(call.arg("dims"))
    nd = len(call.shape(x))
    call.set_out(permute_slot(call.slot(x), [norm_axis(d, nd) for d in dims]))


@layout("transpose", [torch.transpose, "method:transpose", torch.t, "method:t", torch.swapaxes,
                      "method:swapaxes", "method:mT", aten.transpose, aten.t, aten.numpy_T, aten.mT, aten.swapaxes,
                      aten.swapdims, torch.swapdims, "method:swapdims"], accepts_params=True)
def _transpose(call):
    """``transpose``/``swapaxes`` swap two axes; ``t``/``mT`` the last two; ``numpy_T`` (``x.T``)
    reverses them all."""
    x = call.arg("input")
    nd = len(call.shape(x))
    if call.target_name == "numpy_T":
        call.set_out(permute_slot(call.slot(x), list(range(nd))[::-1]))
        return
    if call.target_name in ("t", "mT") or nd < 2 and call.arg("dim0", "axis0") is None:
        a, b = nd - 2, nd - 1
    else:
        a, b = norm_axis(call.arg("dim0", "axis0"), nd), norm_axis(call.arg("dim1", "axis1"), nd)
    dims = list(range(nd))
    dims[a], dims[b] = dims[b], dims[a]
    call.set_out(permute_slot(call.slot(x), dims))


def _rewrite_expand(edit) -> None:
    _rewrite_sizes(edit, "size")


@layout("expand", ["method:expand", "method:expand_as", torch.broadcast_to, "method:broadcast_to",
                   "method:contiguous", torch.Tensor.contiguous, aten.expand, aten.expand_as],
        rewrite=_rewrite_expand,
        accepts_params=True)
def _expand(call):
    x = call.arg("input")
    s, nd = call.slot(x), len(call.out_shape)
    if s.pax is not None:
        call.set_out(Slot(pax=(None,) * (nd - len(s.pax)) + tuple(s.pax), pnames=s.pnames, pzero=s.pzero))
    elif s.ids is None:
        call.set_out(Slot())
    else:
        call.set_out(s.moved(pad_left(s.ids, nd), pad_left(s.zero, nd)))


def _static(v):
    """An int computed in the graph (``x.shape[-1]``) → its value on the example inputs."""
    if isinstance(v, torch.fx.Node) and isinstance(v.meta.get(META), int):
        return v.meta[META]
    return v


def expand_index(idx, ndim: int) -> tuple:
    """``x[idx]``'s index as a tuple with ``...`` spelled out as full slices and sizes computed in
    the graph replaced by their values (channel bounds are static: the compact model keeps the
    constants)."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    idx = tuple(slice(_static(i.start), _static(i.stop), _static(i.step)) if isinstance(i, slice) else _static(i)
                for i in idx)
    if any(i is Ellipsis for i in idx):
        n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
        k = next(j for j, i in enumerate(idx) if i is Ellipsis)
        idx = idx[:k] + (slice(None),) * (ndim - n_real) + idx[k + 1:]
    return idx


def index_slot(call, s: Slot, shape, idx) -> Slot | None:
    """Slot of ``x[idx]``: basic indexing (ints, slices, None, Ellipsis) anywhere, and integer
    tensor indices along axes without channel structure (a gather along tokens or positions).
    None if unsupported (a tensor index or a strided slice along a channel axis, a boolean mask)."""
    idx = expand_index(idx, len(shape))
    idx = idx + (slice(None),) * (len(shape) - sum(1 for i in idx if i is not None))
    np_idx, ax = [], 0
    for i in idx:
        if i is None:
            np_idx.append(None)
            continue
        varies = s.ids.shape[ax] > 1
        if isinstance(i, torch.fx.Node):
            info = i.meta.get(META)
            if varies or not isinstance(info, TensorInfo) or info.dtype == torch.bool:
                return None
            np_idx.append(np.zeros(info.shape, np.int64))  # every position of a broadcast axis is one
        elif isinstance(i, int):
            if varies:
                _one_kept(call, np.take(s.ids, i, axis=ax))
            np_idx.append(i if varies else 0)
        elif isinstance(i, slice):
            if varies and not all(v is None or isinstance(v, int) for v in (i.start, i.stop, i.step)):
                return None  # bounds computed in the graph
            np_idx.append(i if varies else slice(None))
        else:
            return None
        ax += 1
    t = tuple(np_idx)
    return sliced(call, s, t)


def _stacked_pick(call, s: Slot, shape, idx) -> Slot | None:
    """``W[idx]``: a stack of matrices (a 3-D parameter) indexed along its first axis by an integer
    tensor, one matrix per index (MoE experts picked by the routing); None for anything else.

    Each matrix is a unit (with the same matrix of the other stacks ``idx`` picks from): the compact
    model picks a removed matrix as zeros (see :func:`_rewrite_pick`), exactly what the zeroed stack
    gives, so nothing downstream needs to be zero-invariant."""
    info = idx.meta.get(META) if isinstance(idx, torch.fx.Node) else None
    if not isinstance(info, TensorInfo) or info.dtype == torch.bool or shape is None or len(shape) != 3:
        return None
    if s.pax[0] is not None and s.pzero:
        call.picked_by(idx, s.pax[0])
    return Slot(pax=(None,) * len(info.shape) + tuple(s.pax[1:]), pnames=s.pnames, pzero=s.pzero)


def _rewrite_pick(edit, x, idx) -> bool:
    """``W[idx]`` where the stack ``W`` lost whole matrices: the index is mapped onto the kept ones
    and a removed matrix is picked as zeros (``where``), as in the zeroed model. False when ``W``
    keeps every matrix (nothing to do)."""
    keep = edit.keep(x).get(0)
    if keep is None or not isinstance(idx, torch.fx.Node) or not edit.is_param_value(x):
        return False
    remap = np.where(keep, np.cumsum(keep) - 1, 0).astype(np.int64)
    g, new_idx = edit.graph, edit.new_value(idx)
    with g.inserting_before(edit.new):
        picked = g.call_function(torch.take, (edit.constant(remap), new_idx))
        kept = g.call_function(torch.take, (edit.constant(keep.astype(bool)), new_idx))
        for _ in range(len(edit.shape(x)) - 1):
            kept = g.call_function(torch.unsqueeze, (kept, -1))
    edit.new.replace_input_with(new_idx, picked)
    with g.inserting_after(edit.new):
        edit.replace(g.call_function(torch.where, (kept, edit.new, 0.0)))
    return True


def _rewrite_index(edit) -> None:
    indices = list(edit.arg("indices"))
    if len(indices) == 1:
        _rewrite_pick(edit, edit.arg("input"), indices[0])


@layout("index", [aten.index], rewrite=_rewrite_index, accepts_params=True)
def _index(call):
    """``aten.index.Tensor(x, [None, idx, …])``: the ATen form of ``x[:, idx]``. A stack of weight
    matrices indexed along its first axis (``experts.gate_up_proj[expert_ids]``, MoE) is that
    parameter seen directly, one matrix per index."""
    x = call.arg("input")
    s, shape = call.slot(x), call.shape(x)
    if s.pax is not None:
        indices = list(call.arg("indices"))
        out = _stacked_pick(call, s, shape, indices[0]) if len(indices) == 1 else None
        if out is None:
            call.pin_slot(s, f"parameter {s.pnames[0] if s.pnames else ''} is indexed by {call.name}")
        call.set_out(out or Slot())
        return
    if s.ids is None:
        call.set_out(Slot())
        return
    idx = tuple(slice(None) if i is None else i for i in call.arg("indices"))
    out = index_slot(call, s, shape, idx)
    if out is None:
        call.pin(s.ids, f"is indexed with tensors along a channel axis by {call.name}")
        out = Slot()
    call.set_out(out)


def _rewrite_getitem(edit) -> None:
    if _rewrite_pick(edit, edit.arg("input"), edit.arg("index")):
        return
    x, idx = edit.arg("input"), edit.new_arg("index")
    xk = edit.keep(x)
    shape = edit.shape(x)
    if not xk or shape is None:
        return
    out, ax = [], 0
    for i in expand_index(idx, len(shape)):
        if i is None:
            out.append(i)
            continue
        if ax in xk and not (isinstance(i, slice) and i == slice(None)):
            keep = xk[ax]
            if isinstance(i, int):
                j = i % shape[ax]
                if not keep[j]:
                    edit.fail("it selects a removed position")
                i = int(np.cumsum(keep)[j] - 1)
            elif isinstance(i, slice) and i.step in (None, 1):
                lo, hi, _ = i.indices(shape[ax])
                i = slice(int(keep[:lo].sum()), int(keep[:hi].sum()))
            else:
                edit.fail("its index cannot follow a shrinking axis")
        out.append(i)
        ax += 1
    edit.set_arg("index", tuple(out) if len(out) != 1 else out[0])


def _pax_index(s: Slot, shape, idx) -> Slot | None:
    """``param[idx]`` for basic indexing: still the parameter's elements, or None if unsupported."""
    pax, out, ax = list(s.pax), [], 0
    for i in idx + (slice(None),) * (len(shape) - sum(1 for i in idx if i is not None)):
        if i is None:
            out.append(None)
        elif isinstance(i, int):
            ax += 1
        elif isinstance(i, slice):
            out.append(pax[ax][i] if pax[ax] is not None else None)
            ax += 1
        else:
            return None
    return Slot(pax=tuple(out), pnames=s.pnames, pzero=s.pzero)


@layout("getitem", [operator.getitem], rewrite=_rewrite_getitem, accepts_params=True)
def _getitem(call):
    x, idx = call.arg("input"), call.arg("index")
    stored = call.value(x)
    if isinstance(stored, (tuple, list)):
        if isinstance(idx, int):
            call.set_out(stored[idx])
        else:
            call.set_out(tuple(stored[idx]))
        return
    s, shape = call.slot(x), call.shape(x)
    if s.pax is not None:
        out = _stacked_pick(call, s, shape, idx) or _pax_index(s, shape, expand_index(idx, len(shape)))
        if out is None:
            call.pin_slot(s, f"parameter {s.pnames[0]} is indexed with tensors by {call.name}")
        call.set_out(out or Slot())
        return
    if shape is None or s.ids is None:
        call.set_out(Slot())
        return
    out = index_slot(call, s, shape, idx)
    if out is None:
        call.pin(s.ids, f"is indexed with tensors or a strided slice by {call.name}")
        call.set_out(Slot())
        return
    call.set_out(out)


@layout("roll", [torch.roll, "method:roll", aten.roll])
def _roll(call):
    """A cyclic shift: positions move along the rolled axes; other axes pass through."""
    x = call.arg("input")
    s, nd = call.slot(x), len(call.shape(x))
    dims = call.arg("dims")
    dims = [dims] if isinstance(dims, int) else list(dims or range(nd))
    axes = [norm_axis(d, nd) for d in dims] if dims else list(range(nd))
    if s.ids is None:
        call.set_out(Slot())
    elif any(s.ids.shape[a] > 1 for a in axes):
        call.pin(s.ids, f"is rolled along a channel axis by {call.name}")
        call.set_out(Slot())
    else:
        call.set_out(Slot(s.ids, s.zero))


@layout("repeat_interleave", [torch.repeat_interleave, "method:repeat_interleave", aten.repeat_interleave])
def _repeat_interleave(call):
    """``x.repeat_interleave(k, dim)`` (MoE routing repeats each token once per chosen expert): every
    position is repeated ``k`` times along ``dim``; the other axes pass through."""
    x, repeats, dim = call.arg("input"), call.arg("repeats"), call.arg("dim")
    s = call.slot(x) if isinstance(x, torch.fx.Node) else Slot()
    if s.ids is None:
        call.set_out(Slot())
        return
    nd = len(call.shape(x))
    if dim is None or not isinstance(repeats, int) or s.ids.shape[norm_axis(dim, nd)] > 1:
        call.pin(s.ids, f"is repeated along a channel axis (or flattened) by {call.name}")
        call.set_out(Slot())
        return
    call.set_out(Slot(s.ids, s.zero))


def _rewrite_slice(edit) -> None:
    x, dim = edit.arg("input"), edit.arg("dim", default=0)
    shape = edit.shape(x)
    keep = edit.keep(x).get(dim % len(shape))
    if keep is None:
        return
    start, end, step = (_static(v) for v in (edit.arg("start"), edit.arg("end"), edit.arg("step", default=1)))
    if step != 1 or not all(v is None or isinstance(v, int) for v in (start, end)):
        edit.fail("a strided or computed slice over a shrinking axis")
    lo, hi, _ = slice(start, end).indices(shape[dim % len(shape)])
    edit.set_arg("start", int(keep[:lo].sum()))
    edit.set_arg("end", int(keep[:hi].sum()))


@layout("slice", [aten.slice], rewrite=_rewrite_slice, accepts_params=True)
def _slice(call):
    x = call.arg("input")
    s, shape = call.slot(x), call.shape(x)
    dim = norm_axis(call.arg("dim", default=0), len(shape))
    sl = slice(*(_static(v) for v in (call.arg("start"), call.arg("end"), call.arg("step", default=1))))
    if s.pax is not None:  # a slice of a parameter: still its elements
        pax = tuple(p[sl] if a == dim and p is not None else p for a, p in enumerate(s.pax))
        call.set_out(Slot(pax=pax, pnames=s.pnames, pzero=s.pzero))
        return
    if s.ids is None or s.ids.shape[dim] == 1:
        call.set_out(s.moved(s.ids, s.zero) if s.ids is not None else Slot())
        return
    sl = (slice(None),) * dim + (sl,)
    call.set_out(sliced(call, s, sl))


def _rewrite_select(edit) -> None:
    x, dim, i = edit.arg("input"), edit.arg("dim"), _static(edit.arg("index"))
    shape = edit.shape(x)
    keep = edit.keep(x).get(dim % len(shape))
    if keep is None:
        return
    j = i % shape[dim % len(shape)]
    if not keep[j]:
        edit.fail("it selects a removed position")
    edit.set_arg("index", int(keep[:j].sum()))


@layout("select", [aten.select], rewrite=_rewrite_select)
def _select(call):
    x = call.arg("input")
    s, shape = call.slot(x), call.shape(x)
    if s.ids is None:
        call.set_out(Slot())
        return
    dim = norm_axis(call.arg("dim"), len(shape))
    i = _static(call.arg("index")) if s.ids.shape[dim] > 1 else 0
    if s.ids.shape[dim] > 1:
        _one_kept(call, np.take(s.ids, i, axis=dim))
    call.set_out(Slot(np.take(s.ids, i, axis=dim), np.take(s.zero, i, axis=dim)))


def _one_kept(call, picked: np.ndarray) -> None:
    """An integer index along a channel axis picks one slab: it must keep a position, or the
    compact graph would have nothing to pick (an attention of width 1 picking q, k or v)."""
    call.require_kept(picked.reshape(1, -1), "is picked by an integer index in")
