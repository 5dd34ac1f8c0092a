"""ATen ops (the export frontend) mapped onto the canonical kinds of the fx frontend.

One rule per kind: ``aten.linear`` is ``linear`` like ``nn.Linear`` and ``F.linear``. Rules read
arguments by position, and ATen schemas keep the functional argument order for these ops.
"""

from __future__ import annotations

import numpy as np
import torch

from otograph.analysis.rules.common import norm_axis
from otograph.analysis.rules.registry import default_registry, register
from otograph.analysis.slots import Slot

aten = torch.ops.aten

KINDS = {
    "conv": [aten.conv1d, aten.conv2d, aten.conv3d],
    "conv_transpose": [aten.conv_transpose1d, aten.conv_transpose2d, aten.conv_transpose3d],
    "linear": [aten.linear],
    "addmm": [aten.addmm],
    "embedding": [aten.embedding],
    "batchnorm": [aten.batch_norm],
    "groupnorm": [aten.group_norm],
    "instancenorm": [aten.instance_norm],
    "prelu": [aten.prelu],
    "layernorm": [aten.layer_norm, aten.rms_norm],
    "unary_zero": [aten.relu, aten.relu_, aten.gelu, aten.silu, aten.hardswish, aten.tanh, aten.neg,
                   aten.dropout, aten.clone, aten.alias, aten.detach, aten._to_copy, aten.to, aten.type_as,
                   aten.leaky_relu, aten.elu, aten.hardtanh, aten.relu6, aten.mish, aten.abs, aten.square,
                   aten.max_pool1d, aten.max_pool2d, aten.max_pool3d, aten.avg_pool1d, aten.avg_pool2d,
                   aten.avg_pool3d, aten.adaptive_avg_pool1d, aten.adaptive_avg_pool2d,
                   aten.adaptive_avg_pool3d, aten.adaptive_max_pool2d, aten.upsample_nearest2d,
                   aten.upsample_bilinear2d, aten.contiguous, aten.sqrt, aten.sin, aten.feature_dropout,
                   aten.silu_, aten.gelu_, aten.hardswish_, aten.hardtanh_, aten.leaky_relu_, aten.elu_,
                   aten.tanh_, aten.dropout_, aten.upsample_nearest1d, aten.upsample_nearest3d,
                   aten.upsample_bicubic2d, aten.upsample_linear1d, aten._adaptive_avg_pool2d],
    "pad": [aten.pad, aten.constant_pad_nd],
    "unary": [aten.gt, aten.lt, aten.ge, aten.le, aten.eq, aten.ne, aten.sigmoid, aten.sigmoid_,
              aten.hardsigmoid_, aten.exp_, aten.hardsigmoid, aten.exp, aten.cos, aten.rsqrt, aten.log, aten.softplus,
              aten.reciprocal],
    "add": [aten.add, aten.sub, aten.rsub, aten.add_],
    "mul": [aten.mul, aten.mul_],
    "div": [aten.div],
    "where": [aten.where],
    "masked_fill": [aten.masked_fill],
    "reshape": [aten.view, aten.reshape, aten._unsafe_view, aten.unsqueeze, aten.squeeze, aten.flatten,
                aten.unflatten],
    "permute": [aten.permute],
    "transpose": [aten.transpose, aten.t],
    "expand": [aten.expand],
    "cat": [aten.cat],
    "stack": [aten.stack],
    "split": [aten.split, aten.split_with_sizes, aten.chunk, aten.unbind],
    "narrow": [aten.narrow],
    "matmul": [aten.matmul, aten.bmm, aten.mm],
    "sdpa": [aten.scaled_dot_product_attention],
    "softmax": [aten.softmax, aten._softmax, aten.log_softmax, aten._log_softmax],
    "reduce": [aten.sum, aten.mean, aten.amax, aten.amin, aten.std, aten.var],
    "pow": [aten.pow],
    "like": [aten.zeros_like, aten.ones_like, aten.full_like, aten.empty_like],
    "meta": [aten.sym_size, aten.arange, aten.zeros, aten.ones, aten.full, aten.empty, aten.scalar_tensor,
             aten._assert_tensor_metadata, aten._assert_scalar, aten.sym_constrain_range_for_size,
             aten.new_ones, aten.new_zeros, aten.new_full, aten.new_empty, aten.lift_fresh_copy],
}


@register("slice", "layout", [aten.slice])
def _slice(call):  # aten.slice(x, dim, start, end, step)
    x = call.arg(0)
    s, shape = call.slot(x), call.shape(x)
    dim = norm_axis(call.arg(1, "dim", 0), len(shape))
    start, end, step = call.arg(2, "start"), call.arg(3, "end"), call.arg(4, "step", 1)
    if s.ids is None or s.ids.shape[dim] == 1:
        call.set_out(Slot(s.ids, s.zero) if s.ids is not None else Slot())
        return
    sl = (slice(None),) * dim + (slice(start, end, step),)
    call.set_out(Slot(s.ids[sl].copy(), s.zero[sl].copy()))


@register("select", "layout", [aten.select])
def _select(call):  # aten.select(x, dim, index)
    x = call.arg(0)
    s, shape = call.slot(x), call.shape(x)
    dim = norm_axis(call.arg(1, "dim"), len(shape))
    i = call.arg(2, "index") if s.ids is not None and s.ids.shape[dim] > 1 else 0
    if s.ids is None:
        call.set_out(Slot())
        return
    call.set_out(Slot(np.take(s.ids, i, axis=dim), np.take(s.zero, i, axis=dim)))


def _register() -> None:
    reg = default_registry()
    for kind, packets in KINDS.items():
        reg.add_targets(kind, packets)


_register()
