"""Coupling: ops that mix positions along an axis (softmax, LayerNorm, GroupNorm, mean, max …).

Pruning a coupled axis changes the other positions, so channel structure along it is pinned with
the op named as the reason; GroupNorm couples only within a norm group, which becomes one unit.
LayerNorm, RMSNorm, ``sum`` and ``mean`` are exact over removed positions that are zero at their
input, once the compact model keeps the original divisor (``rules/divisor.py``). Along other axes
these ops pass slots through.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from otograph.analysis.registry import rule
from otograph.analysis.rules.common import norm_axis
from otograph.analysis.rules.divisor import rewrite_layer_norm, rewrite_mean, rewrite_rms_norm
from otograph.analysis.rules.passthrough import _affine
from otograph.analysis.slots import Slot
from otograph.analysis.space import CONSUMER, PRODUCER

coupling = rule("coupling")
aten = torch.ops.aten


def _varies(s: Slot, axes) -> bool:
    return s.ids is not None and any(s.ids.shape[a] > 1 for a in axes)


@coupling("softmax", [F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, "method:softmax",
                      "method:log_softmax", nn.Softmax, nn.LogSoftmax, aten.softmax, aten._softmax,
                      aten.log_softmax, aten._log_softmax])
def _softmax(call):
    x = call.arg("input")
    s, nd = call.slot(x), len(call.shape(x))
    dim = call.module.dim if call.module is not None else call.arg("dim")
    if dim is None:
        dim = -1
    if _varies(s, [norm_axis(dim, nd)]):
        call.pin(s.ids, f"is normalised by {call.name} (dim={dim})")
        call.set_out(Slot())
        return
    call.set_out(Slot(s.ids, np.zeros(s.ids.shape, bool)) if s.ids is not None else Slot())


def _resize_layernorm(m: nn.Module) -> None:
    if m.weight is not None:
        m.normalized_shape = tuple(m.weight.shape)


def _norm_operands(call) -> tuple[int, list]:
    """``(k, [weight, bias])`` of a LayerNorm/RMSNorm call: ``k`` normalised trailing axes; each of
    weight and bias is a parameter tensor, None (absent) or :data:`_COMPUTED` (a value computed in
    the graph: it cannot be sliced in place, and any parameter behind it is pinned)."""
    if call.module is not None:
        m = call.module
        return len(m.normalized_shape), [m.weight, getattr(m, "bias", None)]
    out = []
    for name in ("weight", "bias"):
        v = call.arg(name)
        t = call.tensor(v)
        if v is None or t is not None:
            out.append(t)
            continue
        call.pin_slot(call.slot(v), f"is the {name} of {call.name} computed in the graph")
        out.append(_COMPUTED)
    return len(call.arg("normalized_shape")), out


_COMPUTED = object()


def _norm_over_units(call, x, s: Slot, axes: list[int], params: list, rms: bool) -> Slot | None:
    """LayerNorm/RMSNorm over trailing ``axes`` along which units vary, or None when that is not exact.

    A removed position is exactly zero at the norm's input: it adds nothing to the sums and counts
    only in the divisor, which the compact model keeps (``rules/divisor.py``). After the norm it is
    ``(0 − mean)/σ·w + b`` for LayerNorm, zero once its weight and bias (members) are zero, and
    ``0/rms·w = 0`` for RMSNorm whatever the weight (a consumer member)."""
    weight, bias = params
    if any(t is _COMPUTED for t in params):
        call.pin(s.ids, f"is normalised over by {call.name}, whose weight or bias is computed in the graph")
        return None
    if not rms and weight is None:
        call.pin(s.ids, f"is normalised over by {call.name}: without a weight a removed channel becomes "
                        f"−mean/σ, not zero")
        return None
    nd = s.ids.ndim
    shape = call.shape(x)
    k = len(axes)
    if any(t is not None and tuple(t.shape) != tuple(shape[nd - k:]) for t in params):
        call.pin(s.ids, f"is normalised over by {call.name}, whose weight or bias is broadcast")
        return None
    call.require_zero(s.ids, s.zero, "the statistics of")
    full = np.broadcast_to(s.ids, s.ids.shape[:nd - k] + tuple(shape[nd - k:]))
    role = CONSUMER if rms else PRODUCER
    for t in (weight, bias):
        if t is None:
            continue
        for j, a in enumerate(axes):
            if s.ids.shape[a] > 1:
                slabs = np.moveaxis(full, a, -1).reshape(-1, shape[a])
                call.union(call.param_ids(t, j, role)[None, :], slabs)
    if rms:
        return Slot(s.ids, s.zero)
    return Slot(s.ids, s.ids >= 0)  # a position no unit owns is never zeroed


def _norm(call, rms: bool) -> None:
    x = call.arg("input")
    s, nd = call.slot(x), len(call.shape(x))
    k, params = _norm_operands(call)
    if s.pax is not None:
        call.pin_slot(s, f"is normalised directly by {call.name}")
        s = Slot()
    axes = list(range(nd - k, nd))
    if _varies(s, axes):
        out = _norm_over_units(call, x, s, axes, params, rms)
        call.set_out(out if out is not None else Slot(s.ids, np.zeros(s.ids.shape, bool)))
        return
    for t in params:  # parameters along axes no unit shrinks: they stay whole
        if isinstance(t, torch.Tensor):
            for a in range(t.ndim):
                call.pin(call.param_ids(t, a, PRODUCER) if t.shape[a] > 1 else None,
                         f"is a parameter of {call.name} over axes no unit shrinks")
    if s.ids is None:
        call.set_out(Slot())
        return
    has_bias = params[1] is not None
    call.set_out(Slot(s.ids, np.zeros(s.ids.shape, bool) if has_bias else s.zero))


@coupling("layernorm", [nn.LayerNorm, F.layer_norm, aten.layer_norm], rewrite=rewrite_layer_norm,
          resize=_resize_layernorm, accepts_params=True)
def _layernorm(call):
    """LayerNorm over trailing axes: units along them are exact with the original divisor kept."""
    _norm(call, rms=False)


@coupling("rmsnorm", [nn.RMSNorm, F.rms_norm, aten.rms_norm], rewrite=rewrite_rms_norm,
          resize=_resize_layernorm, accepts_params=True)
def _rmsnorm(call):
    """RMSNorm over trailing axes: units along them are exact as ``RMSNorm(d′, eps·d/d′)`` with the
    weight scaled by √(d/d′)."""
    _norm(call, rms=True)


def _resize_groupnorm(m: nn.GroupNorm) -> None:
    if m.weight is not None:
        per = m.num_channels // m.num_groups
        m.num_channels = m.weight.shape[0]
        m.num_groups = m.num_channels // per


def _rewrite_groupnorm(edit) -> None:
    """Functional/ATen group norm carries ``num_groups`` as an argument."""
    if edit.module is not None:
        return
    x = edit.arg("input")
    keep = edit.keep(x).get(1)
    if keep is not None:
        edit.set_arg("num_groups", int(keep.sum()) // (edit.shape(x)[1] // edit.arg("num_groups")))


@coupling("groupnorm", [nn.GroupNorm, F.group_norm, aten.group_norm], rewrite=_rewrite_groupnorm,
          resize=_resize_groupnorm, accepts_params=True)
def _groupnorm(call):
    x = call.arg("input")
    s = call.slot(x)
    if s.ids is None:
        call.set_out(Slot())
        return
    C = call.shape(x)[1]
    G = call.module.num_groups if call.module is not None else call.arg("num_groups")
    chan = np.moveaxis(np.broadcast_to(s.ids, s.ids.shape[:1] + (C,) + s.ids.shape[2:]), 1, 0).reshape(C, -1)
    norm_groups = chan.reshape(G, -1)
    call.union_rows(norm_groups)  # a norm group is normalised together: it is one unit
    # ... and goes whole: a group holding channels no unit owns (an input's) cannot lose the others
    call.require_one_unit(norm_groups, "goes whole with its norm group (its channels are normalised together) in")
    out = _affine(call, x, 1, True)
    affine = (call.module.weight if call.module is not None else call.tensor(call.arg("weight"))) is not None
    if not affine:
        call.pin(s.ids, f"{call.name} has no affine parameters to zero a norm group")
    call.set_out(out)


#: reductions whose result is 0 where every reduced element is 0
_ZERO_KEEPING = {"sum", "mean", "amax", "amin", "std", "var", "norm", "nansum", "nanmean", "prod", "vector_norm",
                 "linalg_vector_norm"}
_REDUCE = ["sum", "mean", "amax", "amin", "std", "var", "norm", "logsumexp", "nansum", "nanmean", "prod"]


def _reduced_axes(call, nd: int) -> list[int]:
    dim = call.arg("dim")
    if isinstance(dim, int):
        return [norm_axis(dim, nd)]
    if isinstance(dim, (tuple, list)) and dim:
        return [norm_axis(d, nd) for d in dim]
    return list(range(nd))


def _within_units(call, s: Slot, axes: list[int], nd: int) -> tuple[np.ndarray, np.ndarray]:
    """A reduction over ``axes`` that is exact when each reduced fiber lies inside one unit (the
    unit then loses its whole fiber and the result's position with it): ids and zeros of the
    result with the reduced axes kept as size 1; each fiber must end up in one unit."""
    rest = [a for a in range(nd) if a not in axes]
    full = [s.ids.shape[a] if a in rest else call.shape(call.arg("input"))[a] for a in range(nd)]
    ids = np.broadcast_to(s.ids, full)
    zero = np.broadcast_to(s.zero, full)
    fibers = np.moveaxis(ids, axes, list(range(nd - len(axes), nd))).reshape(-1, int(np.prod([full[a] for a in axes])))
    call.require_one_unit(fibers, "is reduced over, across units, by")
    first = tuple(slice(0, 1) if a in axes else slice(None) for a in range(nd))
    return ids[first], zero.all(axis=tuple(axes), keepdims=True)


@coupling("reduce", [getattr(torch, n) for n in _REDUCE] + ["method:" + n for n in _REDUCE]
          + [torch.linalg.vector_norm, aten.sum, aten.mean, aten.amax, aten.amin, aten.std, aten.var,
             aten.linalg_vector_norm], rewrite=rewrite_mean)
def _reduce(call):
    name = call.target_name
    x = call.arg("input")
    s, shape = call.slot(x), call.shape(x)
    nd = len(shape)
    axes = _reduced_axes(call, nd)
    keepdim = bool(call.arg("keepdim", default=False))
    if s.ids is None:
        call.set_out(Slot())
        return
    ids, zero = s.ids, s.zero
    if _varies(s, axes):
        other_vary = _varies(s, [a for a in range(nd) if a not in axes])
        if not other_vary:
            if name in ("sum", "nansum"):  # zero channels add nothing: each may go on its own
                call.require_zero(s.ids, s.zero, "the sum over channels of")
            elif name == "mean":  # … and the compact model divides by the original count
                call.require_zero(s.ids, s.zero, "the mean over channels of")
            else:
                call.pin(s.ids, f"is reduced over by {call.name}")
            call.set_out(Slot())
            return
        ids, zero = _within_units(call, s, axes, nd)
    if not keepdim:
        keep = [a for a in range(nd) if a not in axes]
        ids = ids.reshape([ids.shape[a] for a in keep])
        zero = zero.reshape([zero.shape[a] for a in keep])
    call.set_out(Slot(ids, zero if name in _ZERO_KEEPING else np.zeros(zero.shape, bool)))


@coupling("normalize", [F.normalize])
def _normalize(call):
    """``x / max(‖x‖_p over dim, eps)``: each fiber along ``dim`` is scaled by its own norm, so it
    must lie inside one unit; a zero fiber stays zero."""
    x = call.arg("input")
    s, nd = call.slot(x), len(call.shape(x))
    if s.ids is None:
        call.set_out(Slot())
        return
    axis = norm_axis(call.arg("dim", default=1), nd)
    if _varies(s, [axis]):
        _within_units(call, s, [axis], nd)
    call.set_out(Slot(s.ids, s.zero))
