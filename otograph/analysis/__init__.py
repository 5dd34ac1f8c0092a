"""Zero-invariant-group analysis: slots, rules, union-find, groups."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch

from otograph.analysis import rules  # noqa: F401  (fills the built-in registry)
from otograph.analysis.engine import Analysis
from otograph.analysis.groups import build_space
from otograph.analysis.registry import BUILTIN, Registry, Rule, register_op
from otograph.analysis.space import Group, Member, SearchSpace
from otograph.errors import OtographError
from otograph.graph import to_networkx
from otograph.tracing import DEFAULT_FRONTEND, Traced, trace

__all__ = ["search_space", "analyse", "SearchSpace", "Group", "Member", "Registry", "Rule", "BUILTIN",
           "register_op"]

log = logging.getLogger(__name__)


def analyse(traced: Traced, registry: Registry | None = None, *, strict: bool = False) -> SearchSpace:
    """Search space of an already traced model (its dependency graph is built here)."""
    graph = to_networkx(traced)
    an = Analysis(traced, registry, graph, strict).run()
    coarse = an.collapsed()
    if coarse:  # some finer unit layouts collapsed: those ops take their coarser one
        an = Analysis(traced, registry, graph, strict, coarse=coarse).run()
    return build_space(an)


def search_space(model: torch.nn.Module, example_inputs: Any, *, leaf_modules: Iterable = (),
                 autowrap: Iterable[Callable] = (), registry: Registry | None = None,
                 frontend: str = DEFAULT_FRONTEND, strict: bool = False, dynamic_shapes: Any = "auto") -> SearchSpace:
    """Trace ``model`` and infer its zero-invariant groups.

    ``dynamic_shapes`` (export frontend): ``"auto"`` traces with every input axis the code leaves free
    kept symbolic (batch, sequence length, image size), so the compact model runs at other shapes;
    ``None`` fixes the example's shapes; or a spec as ``torch.export.export`` takes it.

    ``frontend="auto"``: fx, else torch.export where fx cannot trace the model; and where fx keeps ops
    it cannot see into (a function wrapped with ``torch.fx.wrap``, such as torchvision's
    ``shifted_window_attention``), export is tried too and its space taken if more parameters are
    prunable there (unless ``leaf_modules`` or ``autowrap`` ask for fx's leaves).

    ``registry``: the op rules (default: the built-in ones; see :class:`Registry`). ``strict``:
    a rule that fails raises :class:`~otograph.errors.AnalysisError` naming the node, instead of
    the op being treated as opaque with a logged warning.

    Example:
        >>> import torch, otograph
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        ...                           torch.nn.Conv2d(8, 4, 3))
        >>> space = otograph.search_space(net, torch.randn(1, 3, 16, 16))
        >>> [(g.id, g.num_units, g.prunable) for g in space.groups]
        [('0', 8, True), ('3', 4, False)]
    """
    traced = trace(model, example_inputs, leaf_modules=leaf_modules, autowrap=autowrap, frontend=frontend,
                   dynamic_shapes=dynamic_shapes)
    space = analyse(traced, registry, strict=strict)
    if frontend == "auto" and traced.frontend == "fx" and space.opaque and not (leaf_modules or autowrap):
        try:
            other = analyse(trace(model, example_inputs, frontend="export", dynamic_shapes=dynamic_shapes),
                            registry, strict=strict)
        except OtographError as e:
            log.info("fx keeps opaque ops (%s); torch.export did not do better: %s", ", ".join(space.opaque),
                     str(e).splitlines()[0])
            return space
        if other.prunable_params > space.prunable_params:
            log.info("fx keeps opaque ops (%s); torch.export sees into them: using its graph", ", ".join(space.opaque))
            return other
    return space
