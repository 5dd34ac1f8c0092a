"""Producers (conv/linear out-channels, embedding dims) and their consumer side (in-channels).

A producer's output channel axis is owned by its weight's out axis; its input channel axis is
*consumed*: those slices are summed into every output, so they must be zero to be removable.
Grouped convolutions keep whole conv groups: a group's input and output channels are one unit.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from otograph.analysis.rules.common import axis_ids, norm_axis
from otograph.analysis.rules.registry import register
from otograph.analysis.slots import Slot
from otograph.analysis.space import CONSUMER, PRODUCER


def _chan(ids: np.ndarray, axis: int, size: int) -> np.ndarray:
    """``(size, rest)``: every element at each position along ``axis``."""
    full = np.broadcast_to(ids, ids.shape[:axis] + (size,) + ids.shape[axis + 1:])
    return np.moveaxis(full, axis, 0).reshape(size, -1)


def _other_axes_vary(ids: np.ndarray, axis: int) -> bool:
    return any(n > 1 for a, n in enumerate(ids.shape) if a != axis)


def _out_slot(out_shape, axis: int, ids: np.ndarray) -> Slot:
    shape = [1] * len(out_shape)
    shape[axis] = out_shape[axis]
    ids = np.broadcast_to(ids, (out_shape[axis],)).reshape(shape)
    return Slot(ids.copy(), np.ones(shape, bool))


def _conv_like(call, x, weight, bias, groups: int, transposed: bool):
    s = call.slot(x)
    in_shape, out_shape = call.shape(x), call.out_shape
    cin, cout = in_shape[1], out_shape[1]
    if s.ids is not None and _other_axes_vary(s.ids, 1):
        call.pin(s.ids, f"is spatially structured at the input of {call.name}")
        s = Slot()
    w_out_axis = 1 if transposed else 0
    if groups == 1:
        out_ids = call.param_ids(weight, w_out_axis, PRODUCER)
        w_in = call.param_ids(weight, 0 if transposed else 1, CONSUMER)
        if s.ids is not None:
            call.union(w_in[:, None], _chan(s.ids, 1, cin))
            call.require_zero(s.ids, s.zero, "the input channels of")
    else:
        # whole conv groups: input channels of group g and output channels of group g are one unit
        if transposed:
            w_rows = call.param_ids(weight, 0, PRODUCER)  # (cin,) rows, grouped by input channel
            per_in, per_out = cin // groups, cout // groups
            out_ids = np.repeat(w_rows[::per_in], per_out)
            for g in range(groups):
                call.an.union_all(w_rows[g * per_in:(g + 1) * per_in])
        else:
            out_ids = call.param_ids(weight, 0, PRODUCER)
            per_in, per_out = cin // groups, cout // groups
            for g in range(groups):
                call.an.union_all(out_ids[g * per_out:(g + 1) * per_out])
        if s.ids is not None:
            chan = _chan(s.ids, 1, cin)
            rep = np.repeat(out_ids[::per_out], per_in)  # one output element per input channel
            call.union(rep[:, None], chan)
            if (chan < 0).any():
                call.pin(out_ids, f"{call.name} is grouped over input channels no unit owns")
        else:
            call.pin(out_ids, f"{call.name} is grouped over an input with no channel structure")
    if bias is not None:
        call.union(call.param_ids(bias, 0, PRODUCER), out_ids)
    call.add_flops(weight, int(np.prod(out_shape)), cout)
    call.vote_grad_free((weight,), 1 if transposed and groups == 1 else 0)
    call.vote_grad_free((bias,), 0)
    call.set_out(_out_slot(out_shape, 1, out_ids))


_CONV = [nn.Conv1d, nn.Conv2d, nn.Conv3d]
_CONVT = [nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d]


def _weights(call, w_arg: int, b_arg: int):
    """``(weight, bias)`` of a module call or of a functional/ATen call on parameters; None if the
    weight is computed (then the op is treated as opaque)."""
    if call.module is not None:
        return call.module.weight, call.module.bias
    w, b = call.tensor(call.arg(w_arg, "weight")), call.arg(b_arg, "bias")
    if w is None or (b is not None and call.tensor(b) is None):
        call.an._opaque(call.node, f"{call.name} with computed weights")
        return None
    return w, call.tensor(b) if b is not None else None


@register("conv", "producer", _CONV + [F.conv1d, F.conv2d, F.conv3d], accepts_params=True)
def _conv(call):
    wb = _weights(call, 1, 2)
    if wb is None:
        return
    groups = call.module.groups if call.module is not None else call.arg(6, "groups", 1)
    _conv_like(call, call.arg(0, "input"), *wb, groups, False)


@register("conv_transpose", "producer", _CONVT + [F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d],
          accepts_params=True)
def _conv_t(call):
    if call.module is not None and call.arg(1, "output_size") is not None:
        call.pin(call.slot(call.arg(0, "input")).ids, f"{call.name} is called with output_size")
    wb = _weights(call, 1, 2)
    if wb is None:
        return
    groups = call.module.groups if call.module is not None else call.arg(6, "groups", 1)
    _conv_like(call, call.arg(0, "input"), *wb, groups, True)


@register("linear", "producer", [nn.Linear, F.linear], accepts_params=True)
def _linear(call):
    wb = _weights(call, 1, 2)
    if wb is None:
        return
    weight, bias = wb
    x = call.arg(0, "input")
    s = call.slot(x)
    shp = call.shape(x)
    last = len(shp) - 1
    if s.ids is not None and _other_axes_vary(s.ids, last):
        call.pin(s.ids, f"is structured along a non-feature axis at the input of {call.name}")
        s = Slot()
    w_in = call.param_ids(weight, 1, CONSUMER)
    if s.ids is not None:
        call.union(w_in, axis_ids(s.ids, last, shp[last]))
        call.require_zero(s.ids, s.zero, "the input features of")
    out_ids = call.param_ids(weight, 0, PRODUCER)
    if bias is not None:
        call.union(call.param_ids(bias, 0, PRODUCER), out_ids)
    out_shape = call.out_shape
    call.add_flops(weight, int(np.prod(out_shape)), out_shape[-1])
    call.set_out(_out_slot(out_shape, len(out_shape) - 1, out_ids))


@register("embedding", "producer", [nn.Embedding], accepts_params=True)
def _embedding(call):
    # nn.Embedding(indices); F.embedding(indices, weight); aten.embedding(weight, indices)
    if call.module is not None:
        weight = call.module.weight
    else:
        weight = call.tensor(call.arg(0)) if call.kind_src == "aten" else call.tensor(call.arg(1, "weight"))
    if weight is None:
        call.an._opaque(call.node, f"{call.name} with a computed table")
        return
    out_shape = call.out_shape
    out_ids = call.param_ids(weight, 1, PRODUCER)
    call.set_out(_out_slot(out_shape, norm_axis(-1, len(out_shape)), out_ids))


@register("addmm", "producer", [torch.addmm], accepts_params=True)
def _addmm(call):
    """``bias + x @ W`` with ``W`` stored (in, out): Hugging Face's GPT-2 ``Conv1D``."""
    bias, x, w = call.tensor(call.arg(0)), call.arg(1), call.tensor(call.arg(2))
    if w is None or bias is None or w.ndim != 2:
        call.an._opaque(call.node, f"{call.name} on computed operands")
        return
    s = call.slot(x)
    if s.ids is not None and _other_axes_vary(s.ids, 1):
        call.pin(s.ids, f"is structured along a non-feature axis at the input of {call.name}")
        s = Slot()
    if s.ids is not None:
        call.union(call.param_ids(w, 0, CONSUMER), axis_ids(s.ids, 1, w.shape[0]))
        call.require_zero(s.ids, s.zero, "the input features of")
    out_ids = call.param_ids(w, 1, PRODUCER)
    call.union(call.param_ids(bias, 0, PRODUCER), out_ids)
    call.add_flops(w, int(np.prod(call.out_shape)), w.shape[1])
    call.set_out(_out_slot(call.out_shape, 1, out_ids))
