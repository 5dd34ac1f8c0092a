"""Producers (conv/linear out-channels, embedding dims) and their consumer side (in-channels).

A producer's output channel axis is owned by its weight's out axis; its input channel axis is
*consumed*: those slices are summed into every output, so they must be zero to be removable.
Grouped convolutions with several channels per group on both sides keep their number of groups and
narrow every group: an output unit is output position *j* of every conv group (those weight rows),
an input unit is input position *i* of every group (weight column *i* and those input channels,
which must be zero). With one channel per group on a side (depthwise), a unit is one whole conv
group: its input and output channels together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from otograph.analysis.registry import rule
from otograph.analysis.rules.common import axis_ids, norm_axis
from otograph.analysis.slots import Slot
from otograph.analysis.space import CONSUMER, PRODUCER

producer = rule("producer")
aten = torch.ops.aten


def _chan(ids: np.ndarray, axis: int, size: int) -> np.ndarray:
    """``(size, rest)``: every element at each position along ``axis``."""
    full = np.broadcast_to(ids, ids.shape[:axis] + (size,) + ids.shape[axis + 1:])
    return np.moveaxis(full, axis, 0).reshape(size, -1)


def _other_axes_vary(ids: np.ndarray, axis: int) -> bool:
    return any(n > 1 for a, n in enumerate(ids.shape) if a != axis)


def _out_slot(out_shape, axis: int, ids: np.ndarray, zero: bool = True) -> Slot:
    shape = [1] * len(out_shape)
    shape[axis] = out_shape[axis]
    ids = np.broadcast_to(ids, (out_shape[axis],)).reshape(shape)
    return Slot(ids.copy(), np.full(shape, zero))


@dataclass(frozen=True)
class _Bias:
    """A bias operand: a parameter, or a parameter seen through elementwise ops and slices
    (``qkv.bias.clone()`` with a block zeroed in place, as Swin V2 does)."""

    tensor: torch.Tensor | None
    ids: np.ndarray | None = None
    zero: bool = True  # zero once its unit is zeroed

    def join(self, call, out_ids: np.ndarray) -> bool:
        """Make the bias a member of the output's units; is the output zero once they are?"""
        call.union(call.param_ids(self.tensor, 0, PRODUCER) if self.tensor is not None else self.ids, out_ids)
        return self.zero


def _positions(call, s: Slot, weight, cin: int, cout: int, groups: int) -> np.ndarray:
    """The same position inside every conv group is one unit, on each side; the groups count stays.

    Removing output position *j* of every group removes those weight rows (zero once the unit is).
    Removing input position *i* of every group removes weight column *i* and the input channels
    ``g·per_in + i``, which must be zero (they are summed into the group's kept outputs).
    """
    per_in, per_out = cin // groups, cout // groups
    out_ids = call.param_ids(weight, 0, PRODUCER)
    call.union_rows(out_ids.reshape(groups, per_out).T)
    if s.ids is None:
        return out_ids
    w_in = call.param_ids(weight, 1, CONSUMER)
    chan = _chan(s.ids, 1, cin)
    call.union(np.tile(w_in, groups)[:, None], chan)
    call.require_zero(s.ids, s.zero, "the input channels of")
    unowned = (chan < 0).any(1).reshape(groups, per_in).any(0)  # a position some group cannot lose
    if unowned.any():
        call.pin(w_in[unowned], f"{call.name} is grouped over input channels no unit owns")
    return out_ids


def _grouped(call, s: Slot, weight, cin: int, cout: int, groups: int, transposed: bool) -> np.ndarray:
    """Whole conv groups: input channels of group g and output channels of group g are one unit;
    with several channels per group on both sides, positions inside every group (:func:`_positions`)."""
    per_in, per_out = cin // groups, cout // groups
    if not transposed and per_in > 1 and per_out > 1:
        out_ids = call.param_ids(weight, 0, PRODUCER)
        sides = [out_ids[:per_out]] + ([call.param_ids(weight, 1, CONSUMER)] if s.ids is not None else [])
        if call.finer(*sides):
            return _positions(call, s, weight, cin, cout, groups)
    if transposed:
        w_rows = call.param_ids(weight, 0, PRODUCER)  # (cin,) rows, grouped by input channel
        out_ids = np.repeat(w_rows[::per_in], per_out)
        call.union_rows(w_rows.reshape(groups, per_in))
    else:
        out_ids = call.param_ids(weight, 0, PRODUCER)
        call.union_rows(out_ids.reshape(groups, per_out))
    if s.ids is not None:
        chan = _chan(s.ids, 1, cin)
        rep = np.repeat(out_ids[::per_out], per_in)  # one output element per input channel
        call.union(rep[:, None], chan)
        if (chan < 0).any():
            call.pin(out_ids, f"{call.name} is grouped over input channels no unit owns")
    else:
        call.pin(out_ids, f"{call.name} is grouped over an input with no channel structure")
    return out_ids


def _pin_unowned(call, w_in: np.ndarray, where: np.ndarray | None) -> None:
    """Input columns reading positions no unit owns (a model input, say) keep their width: they matter
    where the weight is also used elsewhere (a layer applied twice) and would otherwise shrink with it."""
    cols = w_in if where is None else w_in[np.asarray(where).reshape(-1)]
    if cols.size:
        call.pin(cols, f"{call.name} reads input channels no unit owns")


def _conv_like(call, x, weight, bias: _Bias | None, groups: int, transposed: bool):
    s = call.slot(x)
    in_shape, out_shape = call.shape(x), call.out_shape
    cin, cout = in_shape[1], out_shape[1]
    if s.ids is not None and _other_axes_vary(s.ids, 1):
        call.pin(s.ids, f"is spatially structured at the input of {call.name}")
        s = Slot()
    if groups == 1:
        out_ids = call.param_ids(weight, 1 if transposed else 0, PRODUCER)
        w_in = call.param_ids(weight, 0 if transposed else 1, CONSUMER)
        if s.ids is not None:
            chan = _chan(s.ids, 1, cin)
            call.union(w_in[:, None], chan)
            call.require_zero(s.ids, s.zero, "the input channels of")
            _pin_unowned(call, w_in, (chan < 0).any(axis=1))
        else:
            _pin_unowned(call, w_in, None)
    else:
        out_ids = _grouped(call, s, weight, cin, cout, groups, transposed)
    zero = True if bias is None else bias.join(call, out_ids)
    call.flop_axes((weight, 0), (weight, 1))
    call.vote_grad_free((weight,), 1 if transposed and groups == 1 else 0)
    call.vote_grad_free((bias.tensor if bias is not None else None,), 0)
    call.set_out(_out_slot(out_shape, 1, out_ids, zero))


def _weights(call):
    """``(weight, bias)`` of a module call or of a functional/ATen call on parameters; None if the
    weight is computed (then the op is treated as opaque)."""
    if call.module is not None:
        b = call.module.bias
        return call.module.weight, _Bias(b) if b is not None else None
    w, b = call.tensor(call.arg("weight")), call.arg("bias")
    if w is None:
        call.opaque(f"{call.name} with computed weights")
        return None
    if b is None:
        return w, None
    if call.tensor(b) is not None:
        return w, _Bias(call.tensor(b))
    s = call.slot(b)
    if s.pax is not None and len(s.pax) == 1 and s.pax[0] is not None:
        return w, _Bias(None, s.pax[0], s.pzero)
    call.opaque(f"{call.name} with a computed bias")
    return None


def _groups(call) -> int:
    return call.module.groups if call.module is not None else call.arg("groups", default=1)


def _rewrite_groups(edit) -> None:
    """A grouped convolution keeps the conv groups that still have kept weight rows: fewer when
    whole groups went, all when every group was narrowed. Modules get ``groups`` (and their channel
    counts) set here, functional/ATen calls the ``groups`` argument."""
    m = edit.module
    groups = m.groups if m is not None else edit.arg("groups", default=1)
    if groups == 1:
        return
    if m is not None:
        name, rows_full = f"{edit.old.target}.weight", m.weight.shape[0]
    else:
        w = edit.arg("weight")
        if not isinstance(w, torch.fx.Node) or w.op != "get_attr":
            return
        name, rows_full = w.target, edit.shape(w)[0]
    rows = edit.kept_rows(name, 0)
    if rows is None:
        return
    kept_groups = len(np.unique(rows // (rows_full // groups)))
    if m is None:
        edit.set_arg("groups", kept_groups)
        return
    new = edit.root.get_submodule(edit.old.target)
    new.groups = kept_groups
    _channels_from_weight(new)


def _resize_conv(m: nn.modules.conv._ConvNd) -> None:
    """Attributes of a conv whose weight was sliced while its attributes are still the traced ones
    (in place and for a compact graph alike; in the graph, :func:`_rewrite_groups` then sets ``groups``
    from the plan). A conv with one channel per group on a side (depthwise), or transposed, lost whole
    groups: their count follows the weight's rows. With several on both sides, either every group
    was narrowed (the count stays) or, where the analysis kept whole groups, whole ones went; the
    weight's columns tell which unless both readings fit, and then the count stays (a wrong guess
    fails the check that follows every shrink)."""
    w, g = m.weight, m.groups
    if g > 1:
        if m.transposed:  # weight (in, out / groups, ...): rows are input channels, per group together
            per = m.in_channels // g
            if w.shape[0] % per == 0:
                m.groups = w.shape[0] // per
        else:
            per_in, per_out = m.in_channels // g, m.out_channels // g
            whole = per_in == 1 or per_out == 1 or (w.shape[1] == per_in and w.shape[0] % g != 0)
            if whole and w.shape[0] % per_out == 0:
                m.groups = w.shape[0] // per_out
    _channels_from_weight(m)


def _channels_from_weight(m: nn.modules.conv._ConvNd) -> None:
    """Channel counts from the sliced weight and the module's ``groups``."""
    w = m.weight
    if m.transposed:
        m.in_channels, m.out_channels = w.shape[0], w.shape[1] * m.groups
    else:
        m.out_channels, m.in_channels = w.shape[0], w.shape[1] * m.groups


@producer("conv", [nn.Conv1d, nn.Conv2d, nn.Conv3d, F.conv1d, F.conv2d, F.conv3d, aten.conv1d, aten.conv2d,
                   aten.conv3d], rewrite=_rewrite_groups, resize=_resize_conv, accepts_params=True)
def _conv(call):
    wb = _weights(call)
    if wb is not None:
        _conv_like(call, call.arg("input"), *wb, _groups(call), False)


@producer("conv_transpose", [nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, F.conv_transpose1d,
                             F.conv_transpose2d, F.conv_transpose3d, aten.conv_transpose1d,
                             aten.conv_transpose2d, aten.conv_transpose3d],
          rewrite=_rewrite_groups, resize=_resize_conv, accepts_params=True)
def _conv_t(call):
    if call.module is not None and call.arg("output_size") is not None:
        call.pin(call.slot(call.arg("input")).ids, f"{call.name} is called with output_size")
    wb = _weights(call)
    if wb is not None:
        _conv_like(call, call.arg("input"), *wb, _groups(call), True)


def _resize_linear(m: nn.Linear) -> None:
    m.out_features, m.in_features = m.weight.shape


@producer("linear", [nn.Linear, F.linear, aten.linear], resize=_resize_linear, accepts_params=True)
def _linear(call):
    wb = _weights(call)
    if wb is None:
        return
    weight, bias = wb
    x = call.arg("input")
    s, shp = call.slot(x), call.shape(x)
    last = len(shp) - 1
    if s.ids is not None and _other_axes_vary(s.ids, last):
        call.pin(s.ids, f"is structured along a non-feature axis at the input of {call.name}")
        s = Slot()
    w_in = call.param_ids(weight, 1, CONSUMER)
    if s.ids is not None:
        feat = axis_ids(s.ids, last, shp[last])
        call.union(w_in, feat)
        call.require_zero(s.ids, s.zero, "the input features of")
        _pin_unowned(call, w_in, feat < 0)
    else:
        _pin_unowned(call, w_in, None)
    out_ids = call.param_ids(weight, 0, PRODUCER)
    zero = True if bias is None else bias.join(call, out_ids)
    out_shape = call.out_shape
    call.flop_axes((weight, 0), (weight, 1))
    call.set_out(_out_slot(out_shape, len(out_shape) - 1, out_ids, zero))


def _resize_embedding(m: nn.Embedding) -> None:
    m.num_embeddings, m.embedding_dim = m.weight.shape


@producer("embedding", [nn.Embedding, F.embedding, aten.embedding], resize=_resize_embedding,
          accepts_params=True)
def _embedding(call):
    weight = call.module.weight if call.module is not None else call.tensor(call.arg("weight"))
    if weight is None:
        call.opaque(f"{call.name} with a computed table")
        return
    out_shape = call.out_shape
    call.set_out(_out_slot(out_shape, norm_axis(-1, len(out_shape)), call.param_ids(weight, 1, PRODUCER)))


@producer("addmm", [torch.addmm, aten.addmm], accepts_params=True)
def _addmm(call):
    """``bias + x @ W`` with ``W`` stored (in, out): Hugging Face's GPT-2 ``Conv1D``."""
    bias, x, w = call.tensor(call.arg("input")), call.arg("mat1"), call.tensor(call.arg("mat2"))
    if w is None or bias is None or w.ndim != 2:
        call.opaque(f"{call.name} on computed operands")
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
    call.flop_axes((w, 0), (w, 1))
    call.set_out(_out_slot(call.out_shape, 1, out_ids))
