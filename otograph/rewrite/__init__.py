"""Sub-network construction: plan → compact GraphModule → verification."""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping

import torch
import torch.fx as fx

from otograph.analysis.space import SearchSpace
from otograph.errors import RewriteError
from otograph.rewrite.check import check_shapes
from otograph.rewrite.plan import Plan, make_plan
from otograph.rewrite.shrink import shrink
from otograph.rewrite.verify import Verification, verify

__all__ = ["compress", "verify", "Verification", "Plan", "make_plan"]


def compress(model: torch.nn.Module, space: SearchSpace,
             units: Mapping[str, Iterable[int]] | None = None) -> fx.GraphModule:
    """A new, smaller ``GraphModule`` computing what the zeroed ``model`` computes.

    With ``units=None`` the units whose producer slices are all exactly zero in ``model`` are
    removed; otherwise ``units`` maps group ids to the units to remove. ``model`` (which may be
    wrapped in ``DataParallel``/``torch.compile``, or converted to another dtype or device since
    tracing) is untouched; the compact model takes its current tensors, dtype and device. The
    result is checked against the expected shapes on the example inputs before it is returned.
    A compact model traced by the export frontend is fixed in eval mode: ``.train()`` refuses.
    """
    if units is None:
        units = space.zero_units(model)
    plan = make_plan(space, units)
    compact, names = shrink(space.traced.gm, model, plan, space.analysis.analysis.registry,
                            space.traced.tensor_shapes)
    check_shapes(compact, space.traced, plan, names)
    if space.traced.frontend == "export":
        compact.train = types.MethodType(_eval_only, compact)
    return compact


def _eval_only(self: torch.nn.Module, mode: bool = True) -> torch.nn.Module:
    if mode:
        raise RewriteError(
            "this compact model was traced by torch.export in eval mode: BatchNorm uses its running "
            "statistics, Dropout is off and custom autograd functions are inlined, so training it would "
            "silently differ from training the original", op="train",
            hint="fine-tune a compact model built with frontend='fx', or use this one for inference only")
    for m in self.modules():
        m.training = False
    return self
