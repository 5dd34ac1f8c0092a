"""Pass-through ops: the channel slots of the output are those of the input.

Activations with f(0) = 0 keep zero slices zero; the others (sigmoid, exp, …) do not. Norms with
per-channel affine parameters add those parameters as members and make the slice zero whatever
their input (gamma and beta are both zeroed).
"""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from otograph.analysis.registry import rule
from otograph.analysis.rules.common import pass_through
from otograph.analysis.slots import Slot
from otograph.analysis.space import BUFFER, CONSUMER, PRODUCER

passthrough = rule("passthrough")
aten = torch.ops.aten


def _installed(load) -> list:
    """Spellings from an optional library, when it is installed."""
    try:
        return list(load())
    except ImportError:
        return []


def _torchvision_zero_preserving():
    from torchvision.ops import stochastic_depth  # x * bernoulli mask / (1 - p): zeros stay zeros

    return [stochastic_depth]


#: elementwise with f(0) = 0 (a parameter operand stays a member: f is applied position by position)
ZERO_PRESERVING = [
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish,
    nn.Tanh, nn.Hardtanh, nn.Softsign, nn.Tanhshrink, nn.Hardshrink, nn.Softshrink,
    F.relu, F.relu_, F.relu6, F.leaky_relu, F.elu, F.celu, F.selu, F.gelu, F.silu, F.hardswish, F.mish,
    F.hardtanh, F.tanh, torch.relu, torch.relu_, torch.tanh, torch.abs, torch.neg, torch.square,
    torch.sin, torch.sqrt, torch.sign, F.softsign, operator.neg,
    "method:relu", "method:relu_", "method:tanh", "method:abs", "method:neg", "method:square",
    "method:sqrt", "method:sign", "method:clone", "method:detach", "method:float", "method:double",
    "method:half", "method:bfloat16", "method:to", "method:type_as", "method:type",
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity,
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, torch.clone,
    aten.relu, aten.relu_, aten.gelu, aten.silu, aten.hardswish, aten.tanh, aten.neg, aten.dropout, aten.clone,
    aten.alias, aten.detach, aten._to_copy, aten.to, aten.type_as, aten.leaky_relu, aten.elu, aten.hardtanh,
    aten.relu6, aten.mish, aten.abs, aten.square, aten.contiguous, aten.sqrt, aten.sin, aten.feature_dropout,
    aten.silu_, aten.gelu_, aten.hardswish_, aten.hardtanh_, aten.leaky_relu_, aten.elu_, aten.tanh_,
    aten.dropout_, aten.celu, aten.celu_, aten.selu, aten.selu_, aten.sign, aten.hardshrink, aten.softshrink,
    aten.mish_,
]
#: per-channel spatial ops with f(0) = 0 (pooling, resampling, zero padding)
SPATIAL = [
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Upsample, nn.UpsamplingNearest2d,
    nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ConstantPad2d,
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
    F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.max_pool1d_with_indices, F.max_pool2d_with_indices,
    F.max_pool3d_with_indices, F.adaptive_max_pool1d_with_indices, F.adaptive_max_pool2d_with_indices,
    F.adaptive_max_pool3d_with_indices, F.interpolate, F.upsample, torch.max_pool2d,
    torch.adaptive_avg_pool1d, torch.avg_pool1d,
    aten.max_pool1d, aten.max_pool2d, aten.max_pool3d, aten.avg_pool1d, aten.avg_pool2d, aten.avg_pool3d,
    aten.adaptive_avg_pool1d, aten.adaptive_avg_pool2d, aten.adaptive_avg_pool3d, aten.adaptive_max_pool1d, aten.adaptive_max_pool2d, aten.adaptive_max_pool3d, aten.max_pool2d_with_indices, aten.max_pool3d_with_indices,
    aten.upsample_nearest2d, aten.upsample_bilinear2d, aten.upsample_nearest1d, aten.upsample_nearest3d,
    aten.upsample_bicubic2d, aten.upsample_linear1d, aten._adaptive_avg_pool2d,
    *_installed(_torchvision_zero_preserving),
]
NONZERO = [
    nn.Sigmoid, nn.Hardsigmoid, nn.Softplus, nn.LogSigmoid, F.sigmoid, F.hardsigmoid, F.softplus,
    F.logsigmoid, torch.sigmoid, torch.exp, torch.cos, torch.rsqrt, torch.log, torch.reciprocal,
    "method:sigmoid", "method:exp", "method:cos", "method:rsqrt", "method:log", "method:reciprocal",
    aten.gt, aten.lt, aten.ge, aten.le, aten.eq, aten.ne, aten.sigmoid, aten.sigmoid_, aten.hardsigmoid_,
    aten.exp_, aten.hardsigmoid, aten.exp, aten.cos, aten.rsqrt, aten.log, aten.softplus, aten.reciprocal,
]


@passthrough("unary_zero", ZERO_PRESERVING, accepts_params=True)
def _unary_zero(call):
    call.set_out(pass_through(call, call.arg("input"), None))


@passthrough("spatial", SPATIAL)
def _spatial(call):
    x = call.arg("input")
    out = pass_through(call, x, False if isinstance(call.module, nn.ConstantPad2d) and call.module.value != 0 else None)
    if call.out_shapes:  # (values, indices) of a max pool: the indices of a channel stay with it
        out = (out, pass_through(call, x, False))
    call.set_out(out)


@passthrough("identity")
def _identity(call):
    call.set_out(pass_through(call, call.arg("input"), None))


@passthrough("unary", NONZERO, accepts_params=True)
def _unary(call):
    call.set_out(pass_through(call, call.arg("input"), False))


def _scalar(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@passthrough("clamp", [torch.clamp, torch.clip, torch.clamp_min, torch.clamp_max, "method:clamp", "method:clip",
                       "method:clamp_min", "method:clamp_max", aten.clamp, aten.clip, aten.clamp_min,
                       aten.clamp_max], accepts_params=True)
def _clamp(call):
    """``clamp(x, min, max)``: f(0) = 0 when min ≤ 0 ≤ max; strictly positive when min > 0."""
    lo, hi = call.arg("min"), call.arg("max")
    for bound in (lo, hi):
        if isinstance(bound, torch.fx.Node):
            call.pin_slot(call.slot(bound), f"is a bound of {call.name}")
    lo_v, hi_v = _scalar(lo), _scalar(hi)
    keeps_zero = (lo is None or (lo_v is not None and lo_v <= 0)) and (hi is None or (hi_v is not None and hi_v >= 0))
    out = pass_through(call, call.arg("input"), None if keeps_zero else False)
    out.positive = lo_v is not None and lo_v > 0
    call.set_out(out)


@passthrough("zero_", ["method:zero_", torch.zero_, aten.zero_], accepts_params=True)
def _zero_(call):
    """``x.zero_()``: zeros, in place; the tensor it writes into only gains zeros (nothing to undo)."""
    call.set_out(pass_through(call, call.arg("input"), True))


@passthrough("pad", [F.pad, aten.pad, aten.constant_pad_nd])
def _pad(call):
    x = call.arg("input")
    pads = call.arg("pad")
    mode = call.arg("mode", default="constant")
    value = call.arg("value") or 0
    s, shp = call.slot(x), call.shape(x)
    if s.ids is not None and shp is not None:
        padded = {len(shp) - 1 - i // 2 for i, p in enumerate(pads) if p}
        if any(s.ids.shape[a] > 1 for a in padded):
            call.pin(s.ids, f"is padded along a channel axis by {call.name}")
            call.set_out(Slot())
            return
    call.set_out(pass_through(call, x, None if (mode == "constant" and value == 0) else False))


def _norm_tensors(call) -> dict[str, torch.Tensor | None]:
    """weight/bias/running stats of a norm module, or of a functional/ATen norm call."""
    names = ("weight", "bias", "running_mean", "running_var")
    if call.module is not None:
        return {n: getattr(call.module, n, None) for n in names}
    return {n: call.tensor(call.arg(n)) for n in names}


def _affine(call, x, axis: int, zero_without_affine: bool):
    """Per-channel norm along ``axis``: affine params join the space and force zeros."""
    tensors = _norm_tensors(call)
    s = call.slot(x)
    if s.ids is None:
        return Slot()
    C = call.shape(x)[axis]
    chan = np.moveaxis(np.broadcast_to(s.ids, s.ids.shape[:axis] + (C,) + s.ids.shape[axis + 1:]), axis, -1)
    chan_flat = chan.reshape(-1, C)
    for name, role in (("weight", PRODUCER), ("bias", PRODUCER), ("running_mean", BUFFER),
                       ("running_var", BUFFER)):
        t = tensors.get(name)
        if isinstance(t, torch.Tensor) and t.ndim == 1 and t.shape[0] == C:
            call.union(call.param_ids(t, 0, role)[None, :], chan_flat)
    if tensors.get("weight") is not None and tensors.get("bias") is not None:
        return Slot(s.ids, s.ids >= 0)  # a position no unit owns is never zeroed
    return Slot(s.ids, s.zero if zero_without_affine else np.zeros(s.ids.shape, bool))


def _resize_norm(m: nn.modules.batchnorm._NormBase) -> None:
    t = m.weight if m.weight is not None else m.running_mean
    if t is not None:
        m.num_features = t.shape[0]


@passthrough("batchnorm", [nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, F.batch_norm,
                           aten.batch_norm], resize=_resize_norm, accepts_params=True)
def _batchnorm(call):
    # without affine, eval-mode BN maps a zero slice to -mean/std: not zero
    stats = _norm_tensors(call).get("running_mean") is not None
    call.set_out(_affine(call, call.arg("input"), 1, not stats))


@passthrough("instancenorm", [nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, F.instance_norm,
                              aten.instance_norm], resize=_resize_norm, accepts_params=True)
def _instancenorm(call):
    stats = _norm_tensors(call).get("running_mean") is not None
    call.set_out(_affine(call, call.arg("input"), 1, not stats))


def _resize_prelu(m: nn.PReLU) -> None:
    m.num_parameters = m.weight.numel()


@passthrough("prelu", [nn.PReLU, F.prelu, aten.prelu], resize=_resize_prelu, accepts_params=True)
def _prelu(call):
    w = call.module.weight if call.module is not None else call.tensor(call.arg("weight"))
    x = call.arg("input")
    s = call.slot(x)
    if w is None:
        call.opaque(f"{call.name} with a computed weight")
        return
    if s.ids is not None and w.numel() > 1:
        C = w.numel()
        chan = np.moveaxis(np.broadcast_to(s.ids, s.ids.shape[:1] + (C,) + s.ids.shape[2:]), 1, -1)
        call.union(call.param_ids(w, 0, CONSUMER)[None, :], chan.reshape(-1, C))
    call.set_out(pass_through(call, x, None))


@passthrough("like", [torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like, torch.rand_like,
                      torch.randn_like, aten.zeros_like, aten.ones_like, aten.full_like, aten.empty_like])
def _like(call):
    s = call.slot(call.arg("input"))
    if s.ids is None:
        call.set_out(Slot())
        return
    call.set_out(Slot(s.ids, np.full(s.ids.shape, call.target_name == "zeros_like")))


@passthrough("pow", [torch.pow, "method:pow", operator.pow, aten.pow])
def _pow(call):
    x, e = call.arg("input"), call.arg("exponent", "other")
    s = call.slot(x)
    if not isinstance(e, (int, float)) or s.ids is None:
        call.pin_slot(s, f"is raised to a tensor power by {call.name}")
        call.pin_slot(call.slot(e), f"is an exponent in {call.name}")
        call.set_out(Slot())
        return
    call.set_out(Slot(s.ids, s.zero if e > 0 else np.zeros(s.ids.shape, bool)))
