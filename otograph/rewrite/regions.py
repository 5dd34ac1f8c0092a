"""Prune the traceable regions of a model that cannot be traced whole.

A detector's post-processing (anchor matching, score thresholds, NMS) has data-dependent shapes, but
its backbone, FPN and heads are plain tensor code. Each region (a submodule path) is traced on the
inputs it receives when the whole model runs on the example, analysed alone, compressed, and put
back in place; whatever enters or leaves a region is a graph input or output of its own analysis,
so those tensors keep their width and the code around the region sees the tensors it always saw.

    spaces = search_regions(model, (images,), ["backbone", "rpn.head", "roi_heads.box_head"])
    small = compress_regions(model, spaces)            # the units exactly zero in model go
    small(images)                                      # the same detections as model(images)

Group ids and member names are the region's own (relative to its module path).
A region traced by the export frontend is fixed to the shapes it saw (batch size, image size after
the detector's resizing); one traced by fx is not.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from otograph.analysis import search_space
from otograph.analysis.space import SearchSpace
from otograph.errors import TraceError
from otograph.rewrite import compress
from otograph.tracing.values import normalize_inputs

__all__ = ["region_inputs", "search_regions", "compress_regions"]


def _check_paths(model: torch.nn.Module, regions: Iterable[str]) -> list[str]:
    paths = list(regions)
    for p in paths:
        model.get_submodule(p)  # AttributeError names a missing path
    for a in paths:
        for b in paths:
            if a != b and (b.startswith(a + ".") or a == ""):
                raise ValueError(f"region {b!r} lies inside region {a!r}; give one of them")
    return paths


@torch.no_grad()
def region_inputs(model: torch.nn.Module, example_inputs: Any, regions: Iterable[str]) -> dict[str, tuple]:
    """The positional inputs of each region's first call while ``model`` runs on ``example_inputs``."""
    paths = _check_paths(model, regions)
    args, kwargs = normalize_inputs(example_inputs)
    seen: dict[str, tuple] = {}
    handles = []
    for p in paths:
        def hook(mod, a, kw, p=p):
            if kw:
                raise TraceError(f"region {p!r} is called with keyword arguments {sorted(kw)}; a region takes "
                                 f"positional inputs only", module=p)
            seen.setdefault(p, a)
        handles.append(model.get_submodule(p).register_forward_pre_hook(hook, with_kwargs=True))
    try:
        model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    missing = [p for p in paths if p not in seen]
    if missing:
        raise TraceError(f"regions {missing} are not called when the model runs on the example inputs")
    return seen


def search_regions(model: torch.nn.Module, example_inputs: Any, regions: Iterable[str],
                   **options) -> dict[str, SearchSpace]:
    """One search space per region, each traced on the inputs the region gets inside ``model``
    (``options`` go to :func:`otograph.search_space`; the frontend is ``"auto"`` unless given: fx,
    else export for a region fx cannot follow, such as a head looping over a list of feature maps)."""
    options.setdefault("frontend", "auto")
    inputs = region_inputs(model, example_inputs, regions)
    return {p: search_space(model.get_submodule(p), a, **options) for p, a in inputs.items()}


def compress_regions(model: torch.nn.Module, spaces: Mapping[str, SearchSpace],
                     units: Mapping[str, Mapping[str, Iterable[int]]] | None = None) -> torch.nn.Module:
    """A copy of ``model`` with each region replaced by its compact ``GraphModule``.

    ``units`` maps a region to the units to remove (group id → units), as :func:`compress` takes
    them; a region it leaves out (or ``units=None``) loses the units exactly zero in ``model``.
    ``model`` is untouched.
    """
    paths = _check_paths(model, spaces)
    compact = {p: compress(model.get_submodule(p), spaces[p], None if units is None else units.get(p, {}))
               for p in paths}
    memo = {id(model.get_submodule(p)): None for p in paths}  # regions are not copied, only replaced
    out = copy.deepcopy(model, memo)
    for p in paths:
        parent, _, name = p.rpartition(".")
        setattr(out.get_submodule(parent) if parent else out, name, compact[p])
    return out
