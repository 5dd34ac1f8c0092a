"""Pass-through ops: the channel slots of the output are those of the input.

Activations with f(0) = 0 keep zero slices zero; the others (sigmoid, exp, …) do not. Norms
with per-channel affine parameters add those parameters as members and make the slice zero
whatever their input (gamma and beta are both zeroed).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from otograph.analysis.rules.common import join, pass_through
from otograph.analysis.rules.registry import register
from otograph.analysis.slots import Slot
from otograph.analysis.space import BUFFER, CONSUMER, PRODUCER

ZERO_PRESERVING = [
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish,
    nn.Tanh, nn.Hardtanh, nn.Softsign, nn.Tanhshrink, nn.Hardshrink, nn.Softshrink,
    F.relu, F.relu_, F.relu6, F.leaky_relu, F.elu, F.celu, F.selu, F.gelu, F.silu, F.hardswish, F.mish,
    F.hardtanh, F.tanh, torch.relu, torch.relu_, torch.tanh, torch.abs, torch.neg, torch.square,
    torch.sin, torch.sqrt, torch.sign, torch.nn.functional.softsign, __import__("operator").neg,
    "method:relu", "method:relu_", "method:tanh", "method:abs", "method:neg", "method:square",
    "method:sqrt", "method:sign", "method:clone", "method:detach", "method:float", "method:double",
    "method:half", "method:bfloat16", "method:to", "method:type_as", "method:type",
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity,
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, torch.clone,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Upsample, nn.UpsamplingNearest2d,
    nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ConstantPad2d,
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
    F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.interpolate, F.upsample, torch.max_pool2d,
    torch.adaptive_avg_pool1d, torch.avg_pool1d,
]
NONZERO = [
    nn.Sigmoid, nn.Hardsigmoid, nn.Softplus, nn.LogSigmoid, F.sigmoid, F.hardsigmoid, F.softplus,
    F.logsigmoid, torch.sigmoid, torch.exp, torch.cos, torch.rsqrt, torch.log, torch.reciprocal,
    "method:sigmoid", "method:exp", "method:cos", "method:rsqrt", "method:log", "method:reciprocal",
]


@register("unary_zero", "passthrough", ZERO_PRESERVING)
def _unary_zero(call):
    x = call.arg(0, "input")
    if call.module is not None and isinstance(call.module, (nn.ConstantPad2d,)) and call.module.value != 0:
        call.set_out(pass_through(call, x, False))
        return
    call.set_out(pass_through(call, x, None))


@register("identity", "passthrough", [])
def _identity(call):
    call.set_out(pass_through(call, call.arg(0, "input"), None))


@register("unary", "passthrough", NONZERO)
def _unary(call):
    call.set_out(pass_through(call, call.arg(0, "input"), False))


@register("pad", "passthrough", [F.pad])
def _pad(call):
    x = call.arg(0, "input")
    pads = call.arg(1, "pad")
    mode = call.arg(2, "mode", "constant")
    value = call.arg(3, "value", None) or 0
    s, shp = call.slot(x), call.shape(x)
    if s.ids is not None and shp is not None:
        padded = {len(shp) - 1 - i // 2 for i, p in enumerate(pads) if p}
        hit = [a for a in padded if s.ids.shape[a] > 1]
        if hit:
            call.pin(s.ids, f"is padded along a channel axis by {call.name}")
            call.set_out(Slot())
            return
    call.set_out(pass_through(call, x, None if (mode == "constant" and value == 0) else False))


def _affine(call, x, axis: int, zero_without_affine: bool):
    """Per-channel norm along ``axis``: affine params join the space and force zeros."""
    m = call.module
    s = call.slot(x)
    if s.ids is None:
        call.set_out(Slot())
        return None
    C = call.shape(x)[axis]
    chan = np.moveaxis(np.broadcast_to(s.ids, s.ids.shape[:axis] + (C,) + s.ids.shape[axis + 1:]), axis, -1)
    chan_flat = chan.reshape(-1, C)
    for name, role in (("weight", PRODUCER), ("bias", PRODUCER), ("running_mean", BUFFER),
                       ("running_var", BUFFER)):
        t = getattr(m, name, None)
        if isinstance(t, torch.Tensor) and t.ndim == 1 and t.shape[0] == C:
            call.union(call.param_ids(t, 0, role)[None, :], chan_flat)
    affine = getattr(m, "weight", None) is not None and getattr(m, "bias", None) is not None
    if affine:
        return Slot(s.ids, np.ones(s.ids.shape, bool))
    return Slot(s.ids, s.zero if zero_without_affine else np.zeros(s.ids.shape, bool))


@register("batchnorm", "passthrough", [nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm])
def _batchnorm(call):
    m = call.module
    # without affine, eval-mode BN maps a zero slice to -mean/std: not zero
    call.set_out(_affine(call, call.arg(0, "input"), 1, not m.track_running_stats))


@register("instancenorm", "passthrough", [nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d])
def _instancenorm(call):
    m = call.module
    call.set_out(_affine(call, call.arg(0, "input"), 1, not m.track_running_stats))


@register("groupnorm", "coupling", [nn.GroupNorm])
def _groupnorm(call):
    m = call.module
    x = call.arg(0, "input")
    s = call.slot(x)
    if s.ids is None:
        call.set_out(Slot())
        return
    C, G = m.num_channels, m.num_groups
    chan = np.moveaxis(np.broadcast_to(s.ids, s.ids.shape[:1] + (C,) + s.ids.shape[2:]), 1, 0).reshape(C, -1)
    for g in range(G):  # a norm group is normalised together: it is one unit
        call.an.union_all(chan[g * (C // G):(g + 1) * (C // G)])
    out = _affine(call, x, 1, True)
    if not m.affine:
        call.pin(s.ids, f"{call.name} has no affine parameters to zero a norm group")
    call.set_out(out)


@register("prelu", "passthrough", [nn.PReLU])
def _prelu(call):
    m = call.module
    x = call.arg(0, "input")
    s = call.slot(x)
    if s.ids is not None and m.weight.numel() > 1:
        C = m.weight.numel()
        chan = np.moveaxis(np.broadcast_to(s.ids, s.ids.shape[:1] + (C,) + s.ids.shape[2:]), 1, -1)
        call.union(call.param_ids(m.weight, 0, CONSUMER)[None, :], chan.reshape(-1, C))
    call.set_out(pass_through(call, x, None))


@register("masked_fill", "passthrough", ["method:masked_fill"])
def _masked_fill(call):
    x, mask, value = call.arg(0), call.arg(1, "mask"), call.arg(2, "value")
    call.pin_slot(call.slot(mask), f"is the mask of {call.name}")
    out = join(call, [x, mask], "first")
    if out.ids is not None and value != 0:
        out.zero = np.zeros(out.ids.shape, bool)
    call.set_out(out)
