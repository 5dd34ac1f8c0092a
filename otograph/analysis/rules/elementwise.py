"""Elementwise joins: aligned positions of all operands and the result are one element.

In the compact graph, operands that no unit owns (graph inputs, buffers, constants) are gathered
where they meet a shrinking axis of the result.
"""

from __future__ import annotations

import operator

import numpy as np
import torch

from otograph.analysis.registry import rule
from otograph.analysis.rules.common import join, zero_of

elementwise = rule("elementwise")
aten = torch.ops.aten


def _align(edit) -> None:
    edit.align_operands(edit.old.all_input_nodes)


@elementwise("add", [operator.add, operator.iadd, torch.add, "method:add", "method:add_", operator.sub,
                     operator.isub, torch.sub, torch.subtract, "method:sub", "method:sub_", torch.rsub,
                     "method:rsub", aten.add, aten.sub, aten.rsub, aten.add_], rewrite=_align, accepts_params=True)
def _add(call):
    ops = [call.arg("input"), call.arg("other")]
    if call.arg("alpha", default=1) == 0:
        ops = ops[:1]
    call.set_out(join(call, ops, "and"))


@elementwise("mul", [operator.mul, operator.imul, torch.mul, torch.multiply, "method:mul", "method:mul_",
                     aten.mul, aten.mul_], rewrite=_align, accepts_params=True)
def _mul(call):
    call.set_out(join(call, [call.arg("input"), call.arg("other")], "or"))


@elementwise("addcmul", [torch.addcmul, "method:addcmul", aten.addcmul], rewrite=_align, accepts_params=True)
def _addcmul(call):
    """``input + value · tensor1 · tensor2`` (ConvNeXt-V2's global response norm): aligned positions
    are one element; zero where ``input`` is and either factor is."""
    x, a, b = call.arg("input"), call.arg("tensor1"), call.arg("tensor2")
    out = join(call, [x, a, b], "and")
    if out.ids is not None:
        nd = out.ids.ndim
        za, zb = (zero_of(call, t, nd) for t in (a, b))
        zero = zero_of(call, x, nd) & (za | zb | (call.arg("value", default=1) == 0))
        out.zero = np.broadcast_to(zero, np.broadcast_shapes(zero.shape, out.ids.shape)).copy()
    call.set_out(out)


@elementwise("div", [operator.truediv, operator.itruediv, torch.div, torch.true_divide, "method:div",
                     "method:div_", operator.floordiv, aten.div], rewrite=_align, accepts_params=True)
def _div(call):
    num, den = call.arg("input"), call.arg("other")
    d = call.slot(den)
    if (d.ids is not None or d.pax is not None) and not d.positive:
        # a zeroed divisor slice would make inf/nan: keep such spaces whole, unless the divisor
        # is strictly positive whatever the units (clamp_min(eps) of a norm)
        call.pin_slot(d, f"is the divisor of {call.name}")
    call.set_out(join(call, [num, den], "first"))


@elementwise("where", [torch.where, "method:where", aten.where], rewrite=_align)
def _where(call):
    cond, a, b = call.arg("condition"), call.arg("input"), call.arg("other")
    call.pin_slot(call.slot(cond), f"is the condition of {call.name}")
    call.set_out(join(call, [a, b, cond], "and"))


@elementwise("masked_fill", ["method:masked_fill", aten.masked_fill], rewrite=_align)
def _masked_fill(call):
    x, mask, value = call.arg("input"), call.arg("mask"), call.arg("value")
    call.pin_slot(call.slot(mask), f"is the mask of {call.name}")
    out = join(call, [x, mask], "first")
    if out.ids is not None and value != 0:
        out.zero = np.zeros(out.ids.shape, bool)
    call.set_out(out)


@elementwise("copy_", ["method:copy_", aten.copy_], rewrite=_align, accepts_params=True)
def _copy_(call):
    """``dst.copy_(src)``: ``dst`` takes ``src``'s values in place (a buffer update, as torch.export
    writes them): positions of both are one element; zero where ``src`` is."""
    dst, src = call.arg("input"), call.arg("src")
    out = join(call, [src, dst], "first")
    call.set_out(out)
