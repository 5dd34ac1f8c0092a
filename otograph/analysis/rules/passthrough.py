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


def _norm_tensors(call) -> dict[str, torch.Tensor | None]:
    """weight/bias/running stats of a norm module, F.batch_norm or aten.batch_norm/group_norm call."""
    names = ("weight", "bias", "running_mean", "running_var")
    if call.module is not None:
        return {n: getattr(call.module, n, None) for n in names}
    if call.kind == "groupnorm":
        return {"weight": call.tensor(call.arg(2, "weight")), "bias": call.tensor(call.arg(3, "bias"))}
    if call.kind_src == "aten":  # batch_norm(input, weight, bias, running_mean, running_var, training, …)
        pos = {"weight": 1, "bias": 2, "running_mean": 3, "running_var": 4}
    else:  # F.batch_norm / F.instance_norm(input, running_mean, running_var, weight, bias, …)
        pos = {"running_mean": 1, "running_var": 2, "weight": 3, "bias": 4}
    return {n: call.tensor(call.arg(i, n)) for n, i in pos.items()}


def _affine(call, x, axis: int, zero_without_affine: bool):
    """Per-channel norm along ``axis``: affine params join the space and force zeros."""
    tensors = _norm_tensors(call)
    s = call.slot(x)
    if s.ids is None:
        call.set_out(Slot())
        return None
    C = call.shape(x)[axis]
    chan = np.moveaxis(np.broadcast_to(s.ids, s.ids.shape[:axis] + (C,) + s.ids.shape[axis + 1:]), axis, -1)
    chan_flat = chan.reshape(-1, C)
    for name, role in (("weight", PRODUCER), ("bias", PRODUCER), ("running_mean", BUFFER),
                       ("running_var", BUFFER)):
        t = tensors.get(name)
        if isinstance(t, torch.Tensor) and t.ndim == 1 and t.shape[0] == C:
            call.union(call.param_ids(t, 0, role)[None, :], chan_flat)
    affine = tensors.get("weight") is not None and tensors.get("bias") is not None
    if affine:
        return Slot(s.ids, np.ones(s.ids.shape, bool))
    return Slot(s.ids, s.zero if zero_without_affine else np.zeros(s.ids.shape, bool))


@register("batchnorm", "passthrough", [nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
                                       F.batch_norm], accepts_params=True)
def _batchnorm(call):
    # without affine, eval-mode BN maps a zero slice to -mean/std: not zero
    stats = _norm_tensors(call).get("running_mean") is not None
    call.set_out(_affine(call, call.arg(0, "input"), 1, not stats))


@register("instancenorm", "passthrough", [nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
                                          F.instance_norm], accepts_params=True)
def _instancenorm(call):
    stats = _norm_tensors(call).get("running_mean") is not None
    call.set_out(_affine(call, call.arg(0, "input"), 1, not stats))


@register("groupnorm", "coupling", [nn.GroupNorm, F.group_norm], accepts_params=True)
def _groupnorm(call):
    x = call.arg(0, "input")
    s = call.slot(x)
    if s.ids is None:
        call.set_out(Slot())
        return
    C = call.shape(x)[1]
    G = call.module.num_groups if call.module is not None else call.arg(1, "num_groups")
    affine = _norm_tensors(call).get("weight") is not None
    chan = np.moveaxis(np.broadcast_to(s.ids, s.ids.shape[:1] + (C,) + s.ids.shape[2:]), 1, 0).reshape(C, -1)
    for g in range(G):  # a norm group is normalised together: it is one unit
        call.an.union_all(chan[g * (C // G):(g + 1) * (C // G)])
    out = _affine(call, x, 1, True)
    if not affine:
        call.pin(s.ids, f"{call.name} has no affine parameters to zero a norm group")
    call.set_out(out)


@register("prelu", "passthrough", [nn.PReLU, F.prelu], accepts_params=True)
def _prelu(call):
    w = call.module.weight if call.module is not None else call.tensor(call.arg(1, "weight"))
    x = call.arg(0, "input")
    s = call.slot(x)
    if w is None:
        call.an._opaque(call.node, f"{call.name} with a computed weight")
        return
    if s.ids is not None and w.numel() > 1:
        C = w.numel()
        chan = np.moveaxis(np.broadcast_to(s.ids, s.ids.shape[:1] + (C,) + s.ids.shape[2:]), 1, -1)
        call.union(call.param_ids(w, 0, CONSUMER)[None, :], chan.reshape(-1, C))
    call.set_out(pass_through(call, x, None))


@register("masked_fill", "passthrough", ["method:masked_fill"])
def _masked_fill(call):
    x, mask, value = call.arg(0), call.arg(1, "mask"), call.arg(2, "value")
    call.pin_slot(call.slot(mask), f"is the mask of {call.name}")
    out = join(call, [x, mask], "first")
    if out.ids is not None and value != 0:
        out.zero = np.zeros(out.ids.shape, bool)
    call.set_out(out)
