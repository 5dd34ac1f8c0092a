"""Meta ops: sizes, dtypes, asserts and fresh constant tensors; they carry no channel structure."""

from __future__ import annotations

import builtins
import math
import operator

import torch

from otograph.analysis.registry import rule
from otograph.analysis.slots import Slot

meta = rule("meta")
aten = torch.ops.aten


@meta("meta", ["method:size", "method:dim", "method:numel", builtins.getattr, builtins.len, "method:new_zeros",
               "method:new_ones", "method:new_empty", "method:new_full", torch.zeros, torch.ones, torch.arange,
               torch.full, torch.empty, "method:dtype", torch.finfo, torch.tensor, torch._assert, torch.Tensor.size,
               operator.mod, math.sqrt, aten.sym_size, aten.arange, aten.zeros, aten.ones, aten.full, aten.empty,
               aten.scalar_tensor, aten._assert_tensor_metadata, aten._assert_scalar,
               aten.sym_constrain_range_for_size, aten.new_ones, aten.new_zeros, aten.new_full, aten.new_empty,
               aten.lift_fresh_copy])
def _meta(call):
    call.set_out(Slot())
