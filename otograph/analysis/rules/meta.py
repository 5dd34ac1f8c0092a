"""Meta ops: sizes, dtypes, asserts and fresh constant tensors; they carry no channel structure."""

from __future__ import annotations

import builtins
import math
import operator

import torch

from otograph.analysis.registry import rule
from otograph.analysis.rules.layout import permute_slot
from otograph.analysis.slots import Slot

meta = rule("meta")
aten = torch.ops.aten


@meta("meta", ["method:size", "method:dim", "method:numel", builtins.getattr, builtins.len, "method:new_zeros",
               "method:new_ones", "method:new_empty", "method:new_full", torch.zeros, torch.ones, torch.arange,
               torch.full, torch.empty, "method:dtype", torch.finfo, torch.tensor, torch._assert, torch.Tensor.size,
               operator.mod, math.sqrt, aten.sym_size, aten.arange, aten.zeros, aten.ones, aten.full, aten.empty,
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
