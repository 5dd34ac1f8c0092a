"""Contractions: matmul/bmm and scaled-dot-product attention.

For ``a @ b`` the contracted positions of both operands are one element (zeroing q's and k's
slice *c* leaves q·kᵀ unchanged), and a removed contracted slice must be zero in at least one
operand. An operand's structure along batch/row axes survives into the result; the positions it
contracts over join that structure (so q's head *h* is one unit with all of its head_dim).
"""

from __future__ import annotations

import math
import operator

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F

from otograph.analysis.registry import rule
from otograph.analysis.rules.common import axis_ids, merge_ids, pad_left
from otograph.analysis.slots import Slot

contraction = rule("contraction")
aten = torch.ops.aten


def _zero(s: Slot, nd: int) -> np.ndarray:
    return pad_left(s.zero, nd) if s.ids is not None else np.zeros((1,) * nd, bool)


def matmul_slot(call, sa: Slot, sb: Slot, nd: int, what: str) -> Slot:
    """Slot of ``a @ b`` for operands of rank ≥ 2 broadcast to rank ``nd``."""
    A = pad_left(sa.ids, nd) if sa.ids is not None else None
    B = pad_left(sb.ids, nd) if sb.ids is not None else None
    if A is None and B is None:
        return Slot()
    za, zb = _zero(sa, nd), _zero(sb, nd)
    pair_zero = za[..., :, :, None] | zb[..., None, :, :]  # (..., M, K, N)
    if A is not None and B is not None:
        call.union(A[..., :, :, None], B[..., None, :, :])
    for X, is_a in ((A, True), (B, False)):
        if X is None or X.shape[-1 if is_a else -2] == 1:
            continue
        X4 = X[..., :, :, None] if is_a else X[..., None, :, :]
        X4, pz = np.broadcast_arrays(X4, pair_zero)
        bad = X4[~pz]
        if bad.size:
            call.pin(bad, f"a non-zero slice is contracted by {what}")
    contribs = []
    if A is not None and any(n > 1 for n in A.shape[:-1]):
        Am = np.moveaxis(A, -1, 0)
        call.union(Am[:1], Am[1:])
        contribs.append(A[..., :, :1])  # (..., M, 1)
    if B is not None and any(n > 1 for i, n in enumerate(B.shape) if i != B.ndim - 2):
        Bm = np.moveaxis(B, -2, 0)
        call.union(Bm[:1], Bm[1:])
        contribs.append(B[..., :1, :])  # (..., 1, N)
    zero = pair_zero.all(axis=-2)
    if not contribs:
        return Slot()
    shape = np.broadcast_shapes(*[c.shape for c in contribs], zero.shape)
    ids = merge_ids(call, contribs, shape)
    return Slot(ids, np.broadcast_to(zero, shape).copy())


def _rewrite_matmul(edit) -> None:
    """An operand no unit owns is gathered along its contracted axis where the other one shrinks,
    and along the batch axes where the result shrinks (heads of q against a pinned k)."""
    a, b = edit.arg("input"), edit.arg("other", "mat2")
    out, nd = edit.keep(), len(edit.shape())
    for x, other, k_axis in ((a, b, -1), (b, a, -2)):
        if not isinstance(x, fx.Node) or edit.shape(x) is None:
            continue
        shp, own = edit.shape(x), edit.keep(x)
        off = nd - len(shp)
        for ax, k in out.items():
            if off <= ax < nd - 2 and len(shp) > 2 and shp[ax - off] > 1 and ax - off not in own:
                edit.gather(x, ax - off, k)
        if own or not isinstance(other, fx.Node):
            continue
        o_axis = len(edit.shape(other)) + (-2 if k_axis == -1 else -1)
        ok = edit.keep(other)
        if o_axis in ok:
            edit.gather(x, len(shp) + k_axis, ok[o_axis])


def _param_behind(call, x) -> torch.Tensor | None:
    """The parameter a value is a view of (``W.T``: the ``get_attr`` a few layout ops up)."""
    for _ in range(4):
        if not isinstance(x, fx.Node):
            return None
        t = call.tensor(x)
        if t is not None:
            return t
        x = x.args[0] if x.args else None
    return None


def _consume(call, cols: np.ndarray, s: Slot, shp: tuple[int, ...], axis: int) -> None:
    """A weight's contracted ids ``cols`` read ``s`` along ``axis``: they join its features, which
    must be zero to go; structure along any other axis pins the operand."""
    if s.ids is not None and any(n > 1 for i, n in enumerate(s.ids.shape) if i != axis):
        call.pin(s.ids, f"is structured along a non-feature axis at the input of {call.name}")
        return
    if s.ids is not None:
        call.union(cols, axis_ids(s.ids, axis, shp[axis]))
        call.require_zero(s.ids, s.zero, "the input features of")


def _times_param(call, a, sa: Slot, sb: Slot) -> Slot:
    """``x @ W`` with ``W`` a 2-D parameter seen directly (Falcon's ``x @ self.weight.T``): a linear
    layer. ``W``'s contracted axis joins ``x``'s features (which must be zero to go), its other axis
    owns the result's features (zero once the unit is)."""
    k_ids, n_ids = sb.pax
    _consume(call, k_ids, sa, call.shape(a), len(call.shape(a)) - 1)
    out_shape = call.out_shape
    w = _param_behind(call, call.arg("other", "mat2"))
    if w is not None:
        call.flop_axes((w, 0), (w, 1))
    shape = [1] * len(out_shape)
    shape[-1] = out_shape[-1]
    return Slot(n_ids.reshape(shape).copy(), np.full(shape, sb.pzero))


def _stacked_times(call, b, sa: Slot, sb: Slot) -> Slot:
    """``W[idx] @ x`` with ``W[idx]`` one weight matrix per row, picked from a stacked parameter
    (MoE experts through ``torch.bmm``): ``W``'s rows own the result's rows (zero once the unit is),
    its columns join ``x``'s rows, which must be zero to go."""
    r_ids, k_ids = sa.pax[-2], sa.pax[-1]
    _consume(call, k_ids, sb, call.shape(b), len(call.shape(b)) - 2)
    w = _param_behind(call, call.arg("input"))
    if w is not None:
        call.flop_axes((w, w.ndim - 2), (w, w.ndim - 1))
    out_shape = call.out_shape
    shape = [1] * len(out_shape)
    shape[-2] = out_shape[-2]
    return Slot(r_ids.reshape(shape).copy(), np.full(shape, sa.pzero))


@contraction("matmul", [torch.matmul, operator.matmul, torch.bmm, "method:matmul", "method:bmm",
                        "method:__matmul__", aten.matmul, aten.bmm, aten.mm], rewrite=_rewrite_matmul,
             accepts_params=True)
def _matmul(call):
    a, b = call.arg("input"), call.arg("other", "mat2")
    sa, sb = call.slot(a), call.slot(b)
    if sa.pax is None and sb.pax is not None and len(sb.pax) == 2 and all(p is not None for p in sb.pax):
        call.set_out(_times_param(call, a, sa, sb))
        return
    if (sb.pax is None and sa.pax is not None and len(sa.pax) == 3 == len(call.shape(b)) and sa.pax[0] is None
            and all(p is not None for p in sa.pax[1:])):
        call.set_out(_stacked_times(call, b, sa, sb))
        return
    for s in (sa, sb):  # any other use of a parameter operand: it stays whole
        if s.pax is not None:
            call.pin_slot(s, f"parameter {s.pnames[0]} is used directly by {call.name}")
    sa, sb = (Slot() if s.pax is not None else s for s in (sa, sb))
    if len(call.shape(a)) < 2 or len(call.shape(b)) < 2:
        call.pin_slot(sa, f"is a vector operand of {call.name}")
        call.pin_slot(sb, f"is a vector operand of {call.name}")
        call.set_out(Slot())
        return
    call.set_out(matmul_slot(call, sa, sb, len(call.out_shape), call.name))
    call.flop_axes(*_out_axes(call), (a, -1))  # the output's positions × the contracted axis


def _out_axes(call) -> list[tuple]:
    return [(call.node, a) for a in range(len(call.out_shape or ()))]


def _swap_last(s: Slot) -> Slot:
    if s.ids is None:
        return s
    return Slot(np.swapaxes(s.ids, -1, -2), np.swapaxes(s.zero, -1, -2))


def _rewrite_sdpa(edit) -> None:
    """The default scale is 1/√head_dim of the original head size: write it out when heads shrink.
    A mask no unit owns (a shared relative-position bias, a pinned one) is gathered along the
    batch and head axes that shrink: a removed head's output is zero whatever its mask."""
    q, mask = edit.arg("query", "input"), edit.arg("attn_mask")
    nd, qk = len(edit.shape(q)), edit.keep(q)
    if nd - 1 in qk and edit.arg("scale") is None:
        edit.set_arg("scale", 1.0 / math.sqrt(edit.shape(q)[-1]))
    ms = edit.shape(mask)
    if ms is None or edit.keep(mask):
        return
    off = nd - len(ms)
    for a, k in qk.items():
        if a < nd - 2 and a >= off and ms[a - off] > 1:
            edit.gather(mask, a - off, k)


@contraction("sdpa", [F.scaled_dot_product_attention, aten.scaled_dot_product_attention], rewrite=_rewrite_sdpa)
def _sdpa(call):
    q, k, v = call.arg("query", "input"), call.arg("key"), call.arg("value")
    mask = call.arg("attn_mask")
    if call.arg("enable_gqa"):
        for x in (q, k, v):
            call.pin_slot(call.slot(x), f"{call.name} uses grouped-query attention")
        call.set_out(Slot())
        return
    call.pin_slot(call.slot(mask), f"is the attention mask of {call.name}")
    nd = len(call.out_shape)
    scores = matmul_slot(call, call.slot(q), _swap_last(call.slot(k)), nd, call.name)
    if scores.ids is not None:
        scores = Slot(scores.ids, np.zeros(scores.ids.shape, bool))  # softmax(0) is not 0
    call.set_out(matmul_slot(call, scores, call.slot(v), nd, call.name))
    # q·kᵀ costs (… L) × S × E and scores·v (… L) × S × Ev: two shares
    E, Ev, lead = call.shape(q)[-1], call.shape(v)[-1], _out_axes(call)[:-1]
    call.flop_axes(*lead, (k, -2), (q, -1), share=E / (E + Ev))
    call.flop_axes(*lead, (k, -2), (call.node, nd - 1), share=Ev / (E + Ev))


def _frame(s: Slot, letters: str, frame: str) -> tuple[np.ndarray | None, np.ndarray]:
    """An operand's ids and zeros laid out over all letters of the equation (size 1 where absent)."""
    shape = [1] * len(frame)
    if s.ids is None:
        return None, np.zeros(shape, bool)
    order = [letters.index(c) for c in frame if c in letters]
    ids, zero = np.transpose(s.ids, order), np.transpose(s.zero, order)
    for i, c in enumerate(frame):
        if c in letters:
            shape[i] = ids.shape[[x for x in frame if x in letters].index(c)]
    return ids.reshape(shape), zero.reshape(shape)


def _einsum_args(c) -> tuple[str, list]:
    """``(equation without spaces, operands)`` of an einsum call or edit."""
    if c.arg("equation") is not None:
        eq, ops = c.arg("equation"), c.arg("tensors")
    else:  # torch.einsum(equation, *operands)
        eq, *ops = c.arg("args")
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = ops[0]
    return (eq.replace(" ", "") if isinstance(eq, str) else ""), list(ops)


def _rewrite_einsum(edit) -> None:
    """An operand that keeps more positions along a letter than the operand (or result) owning that
    letter is gathered to the kept ones (``"byhwc,hkc->byhwk"``: a relative-position table no unit
    owns, against queries that lost head-dim positions, which are zero there)."""
    eq, ops = _einsum_args(edit)
    if "->" not in eq:
        return
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    keep = {out[a]: k for a, k in edit.keep().items() if a < len(out)}
    for x, term in zip(ops, terms, strict=True):
        if isinstance(x, fx.Node):
            for a, k in edit.keep(x).items():
                keep.setdefault(term[a], k)
    for x, term in zip(ops, terms, strict=True):
        shp = edit.shape(x)
        if not isinstance(x, fx.Node) or shp is None:
            continue
        for a, c in enumerate(term):
            if c in keep and shp[a] > 1:
                edit.align(x, a, keep[c])


@contraction("einsum", [torch.einsum, aten.einsum], rewrite=_rewrite_einsum)
def _einsum(call):
    """Explicit-output einsum (``"bhid,bhjd->bhij"``): matmul's rule over named axes."""
    eq, ops = _einsum_args(call)
    if "->" not in eq or "." in eq:
        call.opaque(f"{call.name} with equation {eq!r}")
        return
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    frame = "".join(dict.fromkeys(lhs.replace(",", "") + out))
    contracted = [i for i, c in enumerate(frame) if c not in out]
    slots = [call.slot(x) for x in ops]
    framed = [_frame(s, t, frame) for s, t in zip(slots, terms, strict=True)]
    full = np.broadcast_shapes(*[z.shape for _, z in framed], *[i.shape for i, _ in framed if i is not None])
    zero = np.logical_or.reduce([np.broadcast_to(z, full) for _, z in framed])  # a product is zero if any factor is
    present = [i for i, _ in framed if i is not None]
    for a in present[1:]:
        call.union(np.broadcast_to(present[0], full), np.broadcast_to(a, full))
    contribs = []
    for ids in present:
        if any(ids.shape[c] > 1 for c in contracted):
            X, z = np.broadcast_arrays(ids, zero)
            call.pin(X[~z], f"a non-zero slice is contracted by {call.name}")
        if any(ids.shape[i] > 1 for i in range(len(frame)) if i not in contracted):
            red = ids
            for c in contracted:  # everything an output position sums over is one unit with it
                moved = np.moveaxis(red, c, 0)
                call.union(moved[:1], moved[1:])
                red = np.take(red, [0], axis=c)
            contribs.append(red)
    if not contribs:
        call.set_out(Slot())
        return
    ids = merge_ids(call, contribs)
    zout = zero.all(axis=tuple(contracted), keepdims=True) if contracted else zero
    zout = np.broadcast_to(zout, np.broadcast_shapes(zout.shape, ids.shape))
    ids = np.broadcast_to(ids, zout.shape)
    keep = [i for i in range(len(frame)) if i not in contracted]
    sq = tuple(contracted)
    ids, zout = ids.squeeze(axis=sq) if sq else ids, zout.squeeze(axis=sq) if sq else zout
    order = [[frame[i] for i in keep].index(c) for c in out]
    call.set_out(Slot(np.transpose(ids, order).copy(), np.transpose(zout, order).copy()))
    contracted_axes = []
    for c in (frame[i] for i in contracted):  # each contracted letter, on the first operand that has it
        j = next(j for j, term in enumerate(terms) if c in term)
        contracted_axes.append((ops[j], terms[j].index(c)))
    call.flop_axes(*_out_axes(call), *contracted_axes)
