"""Coupling: ops that mix positions along an axis (softmax, LayerNorm, mean, max …).

Pruning a coupled axis changes the other positions, so any channel structure along it is pinned
with the op named as the reason. Along other axes these ops pass slots through.
"""

from __future__ import annotations

import builtins
import math
import operator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from otograph.analysis.rules.common import norm_axis
from otograph.analysis.rules.registry import register
from otograph.analysis.slots import Slot


def _varies(s: Slot, axes) -> bool:
    return s.ids is not None and any(s.ids.shape[a] > 1 for a in axes)


@register("softmax", "coupling", [F.softmax, F.log_softmax, torch.softmax, torch.log_softmax,
                                  "method:softmax", "method:log_softmax", nn.Softmax, nn.LogSoftmax])
def _softmax(call):
    x = call.arg(0, "input")
    s, nd = call.slot(x), len(call.shape(x))
    dim = call.module.dim if call.module is not None else call.arg(1, "dim")
    if dim is None:
        dim = -1
    axis = norm_axis(dim, nd)
    if _varies(s, [axis]):
        call.pin(s.ids, f"is normalised by {call.name} (dim={dim})")
        call.set_out(Slot())
        return
    call.set_out(Slot(s.ids, np.zeros(s.ids.shape, bool)) if s.ids is not None else Slot())


@register("layernorm", "coupling", [nn.LayerNorm, F.layer_norm, nn.RMSNorm, F.rms_norm])
def _layernorm(call):
    x = call.arg(0, "input")
    s, nd = call.slot(x), len(call.shape(x))
    if call.module is not None:
        k = len(call.module.normalized_shape)
        has_bias = getattr(call.module, "bias", None) is not None
    else:
        k = len(call.arg(1, "normalized_shape"))
        is_rms = getattr(call.node.target, "__name__", "").startswith("rms_norm")
        has_bias = not is_rms and call.arg(3, "bias") is not None
    axes = list(range(nd - k, nd))
    if _varies(s, axes):
        call.pin(s.ids, f"is normalised over by {call.name}: its mean/variance use every channel")
        call.set_out(Slot(s.ids, np.zeros(s.ids.shape, bool)))
        return
    if s.ids is None:
        call.set_out(Slot())
        return
    call.set_out(Slot(s.ids, np.zeros(s.ids.shape, bool) if has_bias else s.zero))


_ZERO_KEEPING = {"sum", "mean", "amax", "amin", "std", "var", "norm", "nansum", "nanmean", "prod"}
_REDUCE = ["sum", "mean", "amax", "amin", "std", "var", "norm", "logsumexp", "nansum", "nanmean", "prod"]


@register("reduce", "coupling", [getattr(torch, n) for n in _REDUCE] + ["method:" + n for n in _REDUCE])
def _reduce(call):
    target = call.node.target
    name = (target if isinstance(target, str) else target.__name__).split(".")[0]
    x = call.arg(0, "input")
    s, shape = call.slot(x), call.shape(x)
    nd = len(shape)
    dim = call.arg(2 if name == "norm" else 1, "dim")
    keepdim = bool(call.arg(3 if name == "norm" else 2, "keepdim", False)) if name not in (
        "std", "var") else bool(call.node.kwargs.get("keepdim", False))
    if isinstance(dim, (int,)):
        axes = [norm_axis(dim, nd)]
    elif isinstance(dim, (tuple, list)):
        axes = [norm_axis(d, nd) for d in dim]
    else:
        axes = list(range(nd))
    if s.ids is None:
        call.set_out(Slot())
        return
    if _varies(s, axes):
        other_vary = _varies(s, [a for a in range(nd) if a not in axes])
        if name in ("sum", "nansum") and not other_vary:
            call.require_zero(s.ids, s.zero, "the sum over channels of")
        else:
            call.pin(s.ids, f"is reduced over by {call.name}")
        call.set_out(Slot())
        return
    ids, zero = s.ids, s.zero
    if not keepdim:
        keep = [a for a in range(nd) if a not in axes]
        ids = ids.reshape([ids.shape[a] for a in keep])
        zero = zero.reshape([zero.shape[a] for a in keep])
    z = zero if name in _ZERO_KEEPING else np.zeros(zero.shape, bool)
    call.set_out(Slot(ids, z))


@register("meta", "meta", ["method:size", "method:dim", "method:numel", builtins.getattr, builtins.len,
                           "method:new_zeros", "method:new_ones", "method:new_empty", "method:new_full",
                           torch.zeros, torch.ones, torch.arange, torch.full, torch.empty,
                           "method:dtype", torch.finfo, torch.tensor, torch._assert, torch.Tensor.size,
                           operator.mod, math.sqrt])
def _meta(call):
    # sizes, dtypes and fresh constant tensors: no channel structure
    call.set_out(Slot())


@register("like", "passthrough", [torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like,
                                  torch.rand_like, torch.randn_like])
def _like(call):
    s = call.slot(call.arg(0, "input"))
    if s.ids is None:
        call.set_out(Slot())
        return
    name = getattr(call.node.target, "__name__", "").split(".")[0]
    call.set_out(Slot(s.ids, np.full(s.ids.shape, name == "zeros_like")))


@register("pow", "passthrough", [torch.pow, "method:pow", operator.pow])
def _pow(call):
    x, e = call.arg(0, "input"), call.arg(1, "exponent")
    s = call.slot(x)
    if not isinstance(e, (int, float)) or s.ids is None:
        call.pin_slot(s, f"is raised to a tensor power by {call.name}")
        call.pin_slot(call.slot(e), f"is an exponent in {call.name}")
        call.set_out(Slot())
        return
    call.set_out(Slot(s.ids, s.zero if e > 0 else np.zeros(s.ids.shape, bool)))
