"""Compare a compact model with its reference: max |Δ|, parameters and FLOPs before and after."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map

from otograph.graph.cost import count_flops, count_params
from otograph.tracing.values import eval_mode, normalize_inputs

__all__ = ["Verification", "verify"]


@dataclass(frozen=True)
class Verification:
    max_abs: float
    max_rel: float
    max_ref: float
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int

    @property
    def exact(self) -> bool:
        """The project's exactness bound (meant for float64 runs)."""
        return self.max_abs <= 1e-9 * max(1.0, self.max_ref)

    def __repr__(self) -> str:
        return (f"Verification(max|Δ|={self.max_abs:.3g}, rel={self.max_rel:.3g}, "
                f"params {self.params_before:,} → {self.params_after:,}, "
                f"FLOPs {self.flops_before:,} → {self.flops_after:,})")


def _cast(x: Any, dtype: torch.dtype) -> Any:
    return x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x


@torch.no_grad()
def _run(model, args, kwargs):
    with eval_mode(model):
        out = model(*args, **kwargs)
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def verify(reference: torch.nn.Module, compact: torch.nn.Module, example_inputs: Any, *,
           dtype: torch.dtype | None = None) -> Verification:
    """Run both models (eval mode) on ``example_inputs`` and compare every output tensor.

    With ``dtype`` (e.g. ``torch.float64``, for the exactness bound), deep copies of both models and
    the floating-point inputs are converted to it first; the models given are left untouched.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(4, 2)
        >>> v = verify(net, net, torch.randn(3, 4), dtype=torch.float64)
        >>> v.max_abs, v.exact, next(net.parameters()).dtype
        (0.0, True, torch.float32)
    """
    if dtype is not None:
        reference, compact = copy.deepcopy(reference).to(dtype), copy.deepcopy(compact).to(dtype)
        example_inputs = tree_map(lambda x: _cast(x, dtype), example_inputs)
    args, kwargs = normalize_inputs(example_inputs)
    ys, zs = _run(reference, args, kwargs), _run(compact, args, kwargs)
    if len(ys) != len(zs) or any(y.shape != z.shape for y, z in zip(ys, zs, strict=False)):
        raise ValueError(f"outputs differ in structure: {[tuple(y.shape) for y in ys]} vs "
                         f"{[tuple(z.shape) for z in zs]}")
    max_abs = max((float((y - z).abs().max()) for y, z in zip(ys, zs, strict=False) if y.numel()), default=0.0)
    max_ref = max((float(y.abs().max()) for y in ys if y.numel()), default=0.0)
    return Verification(max_abs, max_abs / max(max_ref, 1e-30), max_ref, count_params(reference),
                        count_params(compact), count_flops(reference, example_inputs),
                        count_flops(compact, example_inputs))
