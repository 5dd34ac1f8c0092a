"""Sub-network construction: plan → compact GraphModule → verification."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.fx as fx

from otograph.analysis.space import SearchSpace
from otograph.rewrite.check import check_shapes
from otograph.rewrite.plan import Plan, make_plan
from otograph.rewrite.shrink import shrink
from otograph.rewrite.verify import Verification, verify

__all__ = ["compress", "verify", "Verification", "Plan", "make_plan"]


def compress(model: torch.nn.Module, space: SearchSpace,
             units: Mapping[str, Iterable[int]] | None = None) -> fx.GraphModule:
    """A new, smaller ``GraphModule`` computing what the zeroed ``model`` computes.

    With ``units=None`` the units whose producer slices are all exactly zero in ``model`` are
    removed; otherwise ``units`` maps group ids to the units to remove. ``model`` is untouched.
    The result is checked against the expected shapes on the example inputs before it is returned.
    """
    if units is None:
        units = space.zero_units(model)
    plan = make_plan(space, units)
    compact, names = shrink(space.traced.gm, model, plan, space.analysis.analysis.registry)
    check_shapes(compact, space.traced, plan, names)
    return compact
