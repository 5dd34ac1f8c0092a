"""Compact forms of ops that divide by a width: LayerNorm, RMSNorm and ``mean`` over a shrinking axis.

A removed position is exactly zero in the zeroed model: it adds nothing to a sum but still counts
in the divisor ``d``. The compact model keeps ``d`` (the original width) while it holds only the
``d′`` kept positions, so it computes exactly what the zeroed model computes:

* ``mean(x)`` over the axis becomes ``sum(x) / d``;
* LayerNorm becomes plain ops: ``μ = Σx/d``, ``σ² = (Σ(x−μ)² + (d−d′)·μ²)/d`` (each removed zero
  contributes ``(0−μ)²``), ``y = (x−μ)/√(σ²+eps)·w + b``, computed in at least float32 as
  ``torch.layer_norm`` does;
* RMSNorm is ``RMSNorm(d′, eps·d/d′)`` with its weight scaled by ``√(d/d′)``: ``Σx²/d + eps =
  (d′/d)·(Σx²/d′ + eps·d/d′)``.

These are the ``rewrite`` functions of the coupling rules (``rules/coupling.py``); they use only the
``Edit`` vocabulary.
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F

__all__ = ["rewrite_layer_norm", "rewrite_rms_norm", "rewrite_mean"]

aten = torch.ops.aten


def _shrunk(edit, x, axes: list[int]) -> tuple[int, int] | None:
    """``(d, d′)``: original and kept number of positions over ``axes`` of ``x``, or None when
    none of them shrinks."""
    keep = edit.keep(x)
    if not any(a in keep for a in axes):
        return None
    shape, new = edit.shape(x), edit.new_shape(x)
    return math.prod(shape[a] for a in axes), math.prod(new[a] for a in axes)


def _norm_call(edit) -> tuple:
    """``(x, k, weight, bias, eps)`` of a LayerNorm/RMSNorm call, operands as compact-graph nodes."""
    g = edit.graph
    if edit.module is not None:
        m, pre = edit.module, edit.old.target
        weight = g.get_attr(f"{pre}.weight") if getattr(m, "weight", None) is not None else None
        bias = g.get_attr(f"{pre}.bias") if getattr(m, "bias", None) is not None else None
        return edit.arg("input"), len(m.normalized_shape), weight, bias, m.eps
    weight = edit.new_arg("weight") if edit.arg("weight") is not None else None
    bias = edit.new_arg("bias") if edit.arg("bias") is not None else None
    return edit.arg("input"), len(edit.arg("normalized_shape")), weight, bias, edit.arg("eps")


def _norm_widths(edit) -> tuple[int, int] | None:
    """``(d, d′)`` over a LayerNorm/RMSNorm's normalised axes, or None when none of them shrinks."""
    x = edit.arg("input")
    nd = len(edit.shape(x))
    k = len(edit.module.normalized_shape) if edit.module is not None else len(edit.arg("normalized_shape"))
    return _shrunk(edit, x, list(range(nd - k, nd)))


def rewrite_layer_norm(edit) -> None:
    widths = _norm_widths(edit)
    if widths is None:
        return
    d, kept = widths
    g = edit.graph
    with g.inserting_before(edit.new):
        x, k, weight, bias, eps = _norm_call(edit)
        eps = 1e-5 if eps is None else eps
        xn = edit.new_value(x)
        dims = tuple(range(-k, 0))
        dtype = g.call_function(getattr, (xn, "dtype"))
        acc = g.call_function(torch.promote_types, (dtype, torch.float32))
        xf = g.call_method("to", (xn, acc))
        mean = g.call_function(operator.truediv, (g.call_function(torch.sum, (xf, dims), {"keepdim": True}), d))
        xc = g.call_function(operator.sub, (xf, mean))
        ss = g.call_function(torch.sum, (g.call_function(operator.mul, (xc, xc)), dims), {"keepdim": True})
        if d > kept:  # the removed zeros, each (0 − mean)²
            gone = g.call_function(operator.mul, (g.call_function(operator.mul, (mean, mean)), d - kept))
            ss = g.call_function(operator.add, (ss, gone))
        var = g.call_function(operator.truediv, (ss, d))
        y = g.call_function(operator.mul, (xc, g.call_function(torch.rsqrt,
                                                              (g.call_function(operator.add, (var, eps)),))))
        if weight is not None:
            y = g.call_function(operator.mul, (y, weight))
        if bias is not None:
            y = g.call_function(operator.add, (y, bias))
        y = g.call_method("to", (y, dtype))
    edit.replace(y)


def rewrite_rms_norm(edit) -> None:
    widths = _norm_widths(edit)
    if widths is None:
        return
    d, kept = widths
    scale, ratio = math.sqrt(d / kept), d / kept
    g = edit.graph
    with g.inserting_before(edit.new):
        x, k, weight, _, eps = _norm_call(edit)
        xn = edit.new_value(x)
        if eps is None:  # torch's default: the machine epsilon of the input's dtype
            info = g.call_function(torch.finfo, (g.call_function(getattr, (xn, "dtype")),))
            eps = g.call_function(operator.mul, (g.call_function(getattr, (info, "eps")), ratio))
        else:
            eps = eps * ratio
        shape = tuple(edit.new_shape(x)[-k:])
        w = g.call_function(operator.mul, (weight, scale)) if weight is not None else None
        y = g.call_function(F.rms_norm, (xn, shape, w, eps))
        if weight is None:
            y = g.call_function(operator.mul, (y, scale))
    edit.replace(y)


_SUM = {aten.mean.dim: aten.sum.dim_IntList, aten.mean.default: aten.sum.default, torch.mean: torch.sum}


def rewrite_mean(edit) -> None:
    """``mean`` over a shrinking axis (whose removed positions are zero) → ``sum / d``."""
    if edit.target_name != "mean":
        return
    x = edit.arg("input")
    shape = edit.shape(x)
    if shape is None:
        return
    nd = len(shape)
    dim = edit.arg("dim")
    if isinstance(dim, int):
        axes = [dim % nd]
    elif isinstance(dim, (tuple, list)) and dim:
        axes = [a % nd for a in dim]
    else:
        axes = list(range(nd))
    widths = _shrunk(edit, x, axes)
    if widths is None:
        return
    d, kept = widths
    new, g = edit.new, edit.graph
    if new.op == "call_method" and new.target == "mean":
        new.target = "sum"
    elif new.target in _SUM:
        new.target = _SUM[new.target]
    else:  # another spelling: the kept mean rescaled
        with g.inserting_after(new):
            edit.replace(g.call_function(operator.mul, (new, kept / d)))
        return
    with g.inserting_after(new):
        edit.replace(g.call_function(operator.truediv, (new, d)))
