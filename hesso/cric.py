"""CRIC, the corrective redundant identification cycle.

Plain HESSO ranks units once, on the batch at the start of a period. A unit that looks idle on
that batch (small weights, near-zero gradient) may still carry the model: removing it collapses
the loss. CRIC tests the choice before committing to it:

1. At the start of a period the one-batch saliency gives the bottom-K *candidates*; parameters and
   optimizer state are saved.
2. A *cycle* of ``cycle_steps`` ordinary training steps follows, during which the candidates are
   decayed (the HESSO factor over ``cycle_steps + 1`` steps, so they shrink towards, but do not
   reach, zero) and the saliency of every unit is recorded before each step. A unit the model
   needs fights back: its gradient grows and so does its score.
3. At the end of a cycle, units that fall into the bottom-K of that cycle's summed scores and are
   not yet candidates join the candidates; parameters and optimizer state are restored.
4. It stops when a cycle adds no candidate, or after ``max_cycles`` cycles; the bottom-K of the
   scores summed over all cycles is then removed with the normal HESSO decay over the steps left
   in the period (the period's end does not move).

Cost: up to ``max_cycles · cycle_steps`` steps of each period are spent sampling and then undone,
and one extra copy of the parameters and optimizer state is held during the cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["CRIC", "CricRun", "take_snapshot", "restore_snapshot"]


@dataclass(frozen=True)
class CRIC:
    """Options of the corrective cycle (safe defaults: three cycles, at most half of each period).

    ``cycle_steps=None`` takes ``max(1, D // (2 · max_cycles))`` steps per cycle for a period of
    ``D`` steps. The sampling steps must leave at least one step of the period for the decay.
    """

    max_cycles: int = 3
    cycle_steps: int | None = None

    def __post_init__(self) -> None:
        if self.max_cycles < 1:
            raise ValueError(f"CRIC max_cycles must be >= 1, got {self.max_cycles}")
        if self.cycle_steps is not None and self.cycle_steps < 1:
            raise ValueError(f"CRIC cycle_steps must be >= 1, got {self.cycle_steps}")

    def steps_per_cycle(self, duration: int) -> int:
        """Sampling steps per cycle for a period of ``duration`` steps (validated)."""
        c = self.cycle_steps if self.cycle_steps is not None else max(1, duration // (2 * self.max_cycles))
        if self.max_cycles * c >= duration:
            raise ValueError(
                f"CRIC needs up to {self.max_cycles} cycles x {c} steps, which leaves no step of the "
                f"{duration}-step pruning period for the decay; lengthen pruning_steps or shorten the cycles")
        return c


class CricRun:
    """The mutable state of one corrective cycle run (one per period), serialisable."""

    def __init__(self, candidates: torch.Tensor, snapshot: list[dict[str, Any]]):
        self.candidates = candidates.clone()  # (U,) bool
        self.total = torch.zeros(candidates.numel(), dtype=torch.float64)
        self.cycle_sum = torch.zeros_like(self.total)
        self.cycle = 0
        self.step = 0  # sampling step inside the current cycle
        self.steps_used = 0
        self.snapshot = snapshot

    def record(self, scores: torch.Tensor) -> None:
        """Add one step's saliency."""
        self.total += scores
        self.cycle_sum += scores

    def end_cycle(self, bottom: torch.Tensor, max_cycles: int) -> bool:
        """Close a cycle given the bottom-K ids of its summed scores; True when CRIC is done."""
        new = torch.zeros_like(self.candidates)
        new[bottom] = True
        new &= ~self.candidates
        self.candidates |= new
        self.cycle += 1
        self.step = 0
        self.cycle_sum.zero_()
        return not bool(new.any()) or self.cycle >= max_cycles

    def state(self) -> dict[str, Any]:
        return {"candidates": self.candidates.clone(), "total": self.total.clone(),
                "cycle_sum": self.cycle_sum.clone(), "cycle": self.cycle, "step": self.step,
                "steps_used": self.steps_used, "snapshot": self.snapshot}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CricRun:
        run = cls(state["candidates"], state["snapshot"])
        run.total, run.cycle_sum = state["total"].clone(), state["cycle_sum"].clone()
        run.cycle, run.step, run.steps_used = int(state["cycle"]), int(state["step"]), int(state["steps_used"])
        return run


@torch.no_grad()
def take_snapshot(params: list[torch.Tensor], state: dict) -> list[dict[str, Any]]:
    """Copies of every parameter and its optimizer state, in ``params`` order."""
    out = []
    for p in params:
        st = state.get(p, {})
        out.append({"param": p.detach().clone(),
                    "state": {k: (v.clone() if torch.is_tensor(v) else v) for k, v in st.items()}})
    return out


@torch.no_grad()
def restore_snapshot(params: list[torch.Tensor], state: dict, snapshot: list[dict[str, Any]]) -> None:
    """Write a :func:`take_snapshot` back, in place (parameters keep their identity)."""
    if len(snapshot) != len(params):
        raise ValueError(f"CRIC snapshot holds {len(snapshot)} parameters, the optimizer {len(params)}")
    for p, saved in zip(params, snapshot, strict=True):
        p.copy_(saved["param"])
        st = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in saved["state"].items()}
        if st:
            state[p] = st
        elif p in state:
            del state[p]
