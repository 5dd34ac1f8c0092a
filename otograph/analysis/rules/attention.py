"""``nn.MultiheadAttention``: heads are units; the compact graph inlines it as primitive ops.

Unit *h* holds rows ``h·D … (h+1)·D`` of each of the q, k and v blocks of ``in_proj_weight``
(and bias) and the same columns of ``out_proj.weight``. Zeroing v's rows makes the head's output
zero, so removing the head leaves ``out_proj`` unchanged. ``nn.MultiheadAttention`` cannot
express ``num_heads·head_dim ≠ embed_dim``, so a pruned module is replaced by linear → SDPA →
linear calls on the same parameters.
"""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from otograph.analysis.registry import rule
from otograph.analysis.rules.common import axis_ids
from otograph.analysis.slots import Slot
from otograph.analysis.space import CONSUMER, PRODUCER

attention = rule("attention")


def _unsupported(m: nn.MultiheadAttention, call) -> str | None:
    if not m._qkv_same_embed_dim:
        return "separate q/k/v projection weights"
    if m.bias_k is not None or m.add_zero_attn:
        return "add_bias_kv / add_zero_attn"
    for name in ("key_padding_mask", "attn_mask"):
        if call.arg(name) is not None:
            return name
    if call.arg("is_causal", default=False):
        return "is_causal"
    weights_used = any(u.target is operator.getitem and u.args[1] == 1 and u.users for u in call.node.users)
    if weights_used:
        return "its attention weights are used"
    if any(u.target is not operator.getitem for u in call.node.users):
        return "its output tuple is used whole"
    return None


def _inline(edit) -> None:
    """A pruned ``nn.MultiheadAttention`` becomes linear → SDPA → linear on its (sliced) parameters."""
    m: nn.MultiheadAttention = edit.module
    pre = edit.old.target
    if not edit.shrinks(pre):
        return
    rows = edit.kept_rows(f"{pre}.in_proj_weight", 0)
    for user in edit.old.users:
        if user.target is not operator.getitem or (user.args[1] != 0 and user.users):
            edit.fail(f"its output is used as {user.format_node()}")
    g = edit.graph
    D = m.embed_dim // m.num_heads
    Hn = m.num_heads if rows is None else len(rows) // (3 * D)
    En = Hn * D
    with g.inserting_before(edit.new):
        w = g.get_attr(f"{pre}.in_proj_weight")
        b = g.get_attr(f"{pre}.in_proj_bias") if m.in_proj_bias is not None else None
        heads = []
        for i, name in enumerate(("query", "key", "value")):
            x = edit.new_value(edit.arg(name))
            if not m.batch_first:
                x = g.call_function(torch.transpose, (x, 0, 1))
            wi = g.call_function(operator.getitem, (w, slice(i * En, (i + 1) * En)))
            bi = g.call_function(operator.getitem, (b, slice(i * En, (i + 1) * En))) if b is not None else None
            y = g.call_function(torch.unflatten, (g.call_function(F.linear, (x, wi, bi)), -1, (Hn, D)))
            heads.append(g.call_function(torch.transpose, (y, 1, 2)))
        o = g.call_function(F.scaled_dot_product_attention, tuple(heads), {"scale": 1.0 / D ** 0.5})
        o = g.call_function(torch.flatten, (g.call_function(torch.transpose, (o, 1, 2)), 2))
        ow = g.get_attr(f"{pre}.out_proj.weight")
        ob = g.get_attr(f"{pre}.out_proj.bias") if m.out_proj.bias is not None else None
        out = g.call_function(F.linear, (o, ow, ob))
        if not m.batch_first:
            out = g.call_function(torch.transpose, (out, 0, 1))
    edit.replace_value((out, None))
    edit.root.get_submodule(pre).num_heads = Hn  # no longer called; keep it truthful


@attention("mha", [nn.MultiheadAttention], rewrite=_inline)
def _mha(call):
    m: nn.MultiheadAttention = call.module
    q, k, v = call.arg("query"), call.arg("key"), call.arg("value")
    why = _unsupported(m, call)
    if why is not None:
        for x in (q, k, v):
            call.pin_slot(call.slot(x), f"{call.name} is used with {why}")
        call.set_out((Slot(), Slot()))
        return
    E, H = m.embed_dim, m.num_heads
    D = E // H
    w_in = call.param_ids(m.in_proj_weight, 1, CONSUMER)
    for x in (q, k, v):
        s = call.slot(x)
        if s.ids is None:
            continue
        nd = s.ids.ndim
        if any(n > 1 for a, n in enumerate(s.ids.shape) if a != nd - 1):
            call.pin(s.ids, f"is structured along a non-feature axis at the input of {call.name}")
            continue
        call.union(w_in, axis_ids(s.ids, nd - 1, E))
        call.require_zero(s.ids, s.zero, "the input features of")
    rows = call.param_ids(m.in_proj_weight, 0, PRODUCER).reshape(3, H, D)
    heads = np.moveaxis(rows, 1, 0).reshape(H, 3 * D)
    call.union(heads[:, :1], heads)
    if m.in_proj_bias is not None:
        call.union(call.param_ids(m.in_proj_bias, 0, PRODUCER), rows.ravel())
    cols = call.param_ids(m.out_proj.weight, 1, CONSUMER).reshape(H, D)
    call.union(heads[:, :1], cols)
    call.mark_seen(heads[:, 0])
    out = call.param_ids(m.out_proj.weight, 0, PRODUCER)
    if m.out_proj.bias is not None:
        call.union(call.param_ids(m.out_proj.bias, 0, PRODUCER), out)
    tq, tk = int(np.prod(call.shape(q)[:-1])), int(np.prod(call.shape(k)[:-1]))
    length = call.shape(k)[1 if m.batch_first else 0]
    proj_in, attend, proj_out = 2 * (tq + 2 * tk) * E * E, 4 * tq * length * E, 2 * tq * E * E
    total = proj_in + attend + proj_out
    call.flop_axes((m.in_proj_weight, 0), (m.in_proj_weight, 1), share=proj_in / total)
    call.flop_axes((m.in_proj_weight, 0), share=attend / total)  # kept heads
    call.flop_axes((m.out_proj.weight, 0), (m.out_proj.weight, 1), share=proj_out / total)
    nd = len(call.shape(q))
    shape = [1] * nd
    shape[-1] = E
    call.set_out((Slot(out.reshape(shape).copy(), np.ones(shape, bool)), Slot()))
