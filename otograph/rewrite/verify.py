"""Compare a compact model with its reference: max |Δ|, parameters and FLOPs before and after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import FlopCounterMode

from otograph.trace.fx import eval_mode, fake_mode, normalize_inputs

__all__ = ["Verification", "verify", "count_flops", "count_params"]


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


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: torch.nn.Module, example_inputs: Any) -> int:
    """FLOPs of one forward pass (``torch.utils.flop_counter``), eval mode."""
    return int(flop_counter(model, normalize_inputs(example_inputs)).get_total_flops())


def flop_counter(model: torch.nn.Module, inputs: tuple[tuple, dict]) -> FlopCounterMode:
    """A FlopCounterMode that saw one forward pass of ``model`` (per-module counts included).

    Runs on fake tensors (shapes suffice) and with autograd enabled: fused inference fast paths
    (``nn.MultiheadAttention``'s) are invisible to the FLOP counter, the regular path is not.
    """
    args, kwargs = inputs
    counter = FlopCounterMode(display=False)
    try:  # on fake tensors: FLOPs need shapes, not values
        with eval_mode(model), fake_mode() as mode, counter, torch.enable_grad():
            fake = tree_map(lambda t: mode.from_tensor(t) if isinstance(t, torch.Tensor) else t, (args, kwargs))
            model(*fake[0], **fake[1])
    except Exception:  # noqa: BLE001 - ops that refuse fake tensors: count on the real ones
        counter = FlopCounterMode(display=False)
        with eval_mode(model), counter, torch.enable_grad():
            model(*args, **kwargs)
    return counter


@torch.no_grad()
def _run(model, args, kwargs):
    with eval_mode(model):
        out = model(*args, **kwargs)
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def verify(reference: torch.nn.Module, compact: torch.nn.Module, example_inputs: Any) -> Verification:
    """Run both models (eval mode) on ``example_inputs`` and compare every output tensor."""
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
