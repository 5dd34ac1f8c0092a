"""Sub-network construction: plan → compact GraphModule → verification."""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.fx as fx

from otograph.analysis.space import SearchSpace
from otograph.errors import RewriteError
from otograph.rewrite.attributes import ATTRIBUTE_RULES, AttributeRules, register_resize
from otograph.rewrite.check import check_shapes
from otograph.rewrite.inplace import ShrinkError, shrink_in_place
from otograph.rewrite.plan import Plan, make_plan
from otograph.rewrite.shrink import refuse_baked_casts, shrink
from otograph.rewrite.verify import Verification, verify

__all__ = ["compress", "verify", "Verification", "Plan", "make_plan", "ShrinkError", "register_resize",
           "AttributeRules", "ATTRIBUTE_RULES"]


def compress(model: torch.nn.Module, space: SearchSpace, units: Mapping[str, Iterable[int]] | None = None, *,
             inplace: bool = False, check: bool = True, check_inputs: Iterable[Any] | None = None,
             ) -> fx.GraphModule | torch.nn.Module:
    """A new, smaller ``GraphModule`` computing what the zeroed ``model`` computes; with
    ``inplace=True``, ``model`` itself made smaller (same object, same class), checked.

    With ``units=None`` the units whose producer slices are all exactly zero in ``model`` are
    removed; otherwise ``units`` maps group ids to the units to remove. ``model`` (which may be
    wrapped in ``DataParallel``/``torch.compile``, or converted to another dtype or device since
    tracing) is untouched; the compact model takes its current tensors, dtype and device (an
    exported graph whose casts name the traced dtype refuses a dtype change: trace again). The
    result is checked against the expected shapes on the example inputs before it is returned.
    A compact model traced by the export frontend is fixed in eval mode: ``.train()`` refuses.

    ``inplace=True`` slices ``model``'s own tensors and updates its size attributes instead (see
    :mod:`otograph.rewrite.inplace`), so its class's methods (``generate``, ``save_pretrained``) keep
    working; ``check`` runs it in float64 on the example inputs and at a second batch size and
    sequence length (or on ``check_inputs``) against the zeroed original and raises
    :class:`ShrinkError` (the model left as it was) on any difference.

    Example:
        >>> import torch, otograph
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> space = otograph.search_space(net, torch.randn(3, 4))
        >>> otograph.compress(net, space, {"0": [1, 5]}, inplace=True) is net, net[0].out_features
        (True, 6)
    """
    if inplace:
        return shrink_in_place(model, space, units, check=check, check_inputs=check_inputs)
    if units is None:
        units = space.zero_units(model)
    plan = make_plan(space, units)
    if space.traced.frontend == "export":
        refuse_baked_casts(space.traced.gm, model)
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
