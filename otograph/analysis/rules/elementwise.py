"""Elementwise joins: aligned positions of all operands and the result are one element."""

from __future__ import annotations

import operator

import torch

from otograph.analysis.rules.common import join
from otograph.analysis.rules.registry import register


@register("add", "elementwise", [operator.add, operator.iadd, torch.add, "method:add", "method:add_",
                                 operator.sub, operator.isub, torch.sub, torch.subtract, "method:sub",
                                 "method:sub_", torch.rsub, "method:rsub"], accepts_params=True)
def _add(call):
    ops = [call.arg(0, "input"), call.arg(1, "other")]
    alpha = call.node.kwargs.get("alpha", 1)
    if alpha == 0:
        ops = ops[:1]
    call.set_out(join(call, ops, "and"))


@register("mul", "elementwise", [operator.mul, operator.imul, torch.mul, torch.multiply, "method:mul",
                                 "method:mul_"], accepts_params=True)
def _mul(call):
    call.set_out(join(call, [call.arg(0, "input"), call.arg(1, "other")], "or"))


@register("div", "elementwise", [operator.truediv, operator.itruediv, torch.div, torch.true_divide,
                                 "method:div", "method:div_", operator.floordiv], accepts_params=True)
def _div(call):
    num, den = call.arg(0, "input"), call.arg(1, "other")
    d = call.slot(den)
    if d.ids is not None or d.pax is not None:
        # a zeroed divisor slice would make inf/nan: keep such spaces whole
        call.pin_slot(d, f"is the divisor of {call.name}")
    call.set_out(join(call, [num, den], "first"))


@register("where", "elementwise", [torch.where, "method:where"])
def _where(call):
    cond, a, b = call.arg(0, "condition"), call.arg(1, "input"), call.arg(2, "other")
    call.pin_slot(call.slot(cond), f"is the condition of {call.name}")
    call.set_out(join(call, [a, b, cond], "and"))
