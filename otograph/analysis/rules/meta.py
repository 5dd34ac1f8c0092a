"""Meta ops: sizes, dtypes, asserts and fresh constant tensors; they carry no channel structure."""

from __future__ import annotations

import builtins
import math
import operator

import torch
import torch.fx as fx

from otograph.analysis.registry import rule
from otograph.analysis.rules.layout import permute_slot
from otograph.analysis.slots import Slot

meta = rule("meta")
aten = torch.ops.aten


# Ops whose size arguments may take a size read: the compact model reads the new size there, as it
# should. Anywhere else (a scale ``1 / x.numel()``, ``x * x.shape[-1] ** -0.5``) the value must stay
# the original one, so the axis it reads cannot shrink.
# Tensor constructors (``x.new_ones(x.shape)``, ``torch.zeros(B, C)``) are not among them: their result
# carries no channel structure, so a channel axis they take the size of stays whole (batch and token
# axes read there are fine: they never shrink).
_SIZE_TAKERS = {"view", "reshape", "expand", "repeat", "unflatten", "narrow", "split", "tensor_split", "_assert",
                "sym_constrain_range_for_size", "_assert_scalar", "interpolate", "flatten", "permute",
                "transpose", "sym_size", "size", "expand_as", "view_as", "reshape_as",
                "sym_constrain_range", "_unsafe_view", "layer_norm", "group_norm", "rms_norm",
                "native_layer_norm", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
                "upsample_nearest2d", "upsample_bilinear2d", "pad", "slice", "select", "roll", "tile"}
_SCALAR_OPS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.pow,
               operator.neg, operator.mod, math.sqrt, math.ceil, math.floor, builtins.int, builtins.float,
               builtins.max, builtins.min, operator.getitem}


def _value_use(call, node, depth: int = 0) -> str | None:
    """The first op that uses ``node`` (a size read, or arithmetic on one) as a value, not as a size."""
    for user in node.users:
        name = user.target if user.op == "call_method" else getattr(user.target, "__name__", str(user.target))
        name = getattr(getattr(user.target, "overloadpacket", None), "__name__", name)
        if user.op == "output" or user.target is builtins.getattr:
            continue
        if user.target is operator.getitem and call.shape(user.args[0]) is not None:
            continue  # an index or slice bound of a tensor: the layout rules and the rewriter see to it
        if user.target in _SCALAR_OPS or name in ("sym_float", "sym_int", "sym_sqrt"):
            if any(call.shape(a) is not None for a in user.all_input_nodes):
                return user.name  # arithmetic with a tensor
            found = _value_use(call, user, depth + 1) if depth < 8 else None
            if found:
                return found
        elif name not in _SIZE_TAKERS:
            return user.name
    return None


def check_size_read(call, x, node, axis: int | None) -> None:
    """Pin the axis of ``x`` whose size ``node`` reads (``None``: every axis, as ``numel``; a whole
    ``x.shape``/``x.size()``: the axes its items are taken at) when the size is used as a value."""
    s = call.slot(x)
    if s.ids is None:
        return
    reads: list[tuple[int | None, fx.Node]] = [(axis, node)]
    if axis is None and call.target_name != "numel":  # x.shape / x.size(): one read per item taken
        reads = []
        for user in node.users:
            i = user.args[1] if user.target is operator.getitem and len(user.args) > 1 else None
            reads.append((i % s.ids.ndim if isinstance(i, int) else None, user))
    for a, n in reads:
        use = _value_use(call, n)
        if use is not None and any(s.ids.shape[k] > 1 for k in (range(s.ids.ndim) if a is None else [a])):
            call.pin(s.ids, f"its size is read by {call.name} and used as a value by {use}")
            return


@meta("size_read", ["method:size", "method:numel", builtins.len, torch.Tensor.size, aten.sym_size, aten.sym_numel])
def _size_read(call):
    call.set_out(Slot())
    x = call.node.args[0] if call.node.args else None
    shape = call.shape(x) if isinstance(x, fx.Node) else None
    if shape is None:
        return
    d = call.node.args[1] if len(call.node.args) > 1 else call.node.kwargs.get("dim")
    axis = 0 if call.target_name == "len" else (d % len(shape) if isinstance(d, int) else None)
    check_size_read(call, x, call.node, axis)


@meta("meta", ["method:dim", builtins.getattr, "method:new_zeros",
               "method:new_ones", "method:new_empty", "method:new_full", torch.zeros, torch.ones, torch.arange,
               torch.full, torch.empty, "method:dtype", torch.finfo, torch.tensor, torch._assert,
               operator.mod, math.sqrt, aten.arange, aten.zeros, aten.ones, aten.full, aten.empty,
               aten.scalar_tensor, aten._assert_tensor_metadata, aten._assert_scalar,
               aten.sym_constrain_range_for_size, aten.new_ones, aten.new_zeros, aten.new_full, aten.new_empty,
               aten.lift_fresh_copy], accepts_params=True)
def _meta(call):
    """No channel structure, except a tensor read as an attribute (fx's ``x.T``, ``x.mT``, ``x.data``):
    a view of ``x`` with its axes reversed, its last two swapped, or unchanged; any other tensor
    attribute is treated as an unknown op."""
    if call.target_name == "getattr" and call.out_shape is not None:
        x, name = call.arg("input"), call.arg("name")
        nd = len(call.out_shape)
        dims = {"T": list(range(nd))[::-1], "H": list(range(nd))[::-1], "data": list(range(nd)),
                "mT": [*range(nd - 2), nd - 1, nd - 2], "mH": [*range(nd - 2), nd - 1, nd - 2]}.get(name)
        if dims is None:
            call.opaque(f"Tensor.{name} ({call.node.name})")
        else:
            call.set_out(permute_slot(call.slot(x), dims))
        return
    call.set_out(Slot())
    if call.target_name == "getattr" and call.node.args[1:2] == ("shape",):
        check_size_read(call, call.node.args[0], call.node, None)
