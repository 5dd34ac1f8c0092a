"""The end-to-end check of a model pruned by regions (detectors): zero random units of every region
of a float64 copy, put the compact regions back, run both whole models on fresh images and compare
what they return (boxes, scores, labels, masks, keypoints)."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from otograph.analysis.space import SearchSpace
from otograph.graph.cost import count_params
from otograph.rewrite.regions import compress_regions, search_regions
from otograph.testing.exact import _decorrelate, expected_params, random_units, to_double

__all__ = ["DetectionResult", "check_detector"]


@dataclass(frozen=True)
class DetectionResult:
    spaces: dict[str, SearchSpace]
    units: dict[str, dict[str, list[int]]]
    max_abs: float
    max_ref: float
    same_structure: bool  # as many detections, the same labels, the same keys, on every image
    detections: int  # boxes the zeroed model returned over all batches (0 would make the check empty)
    params_after: int
    expected_params: int
    removed50: float
    seconds: float

    @property
    def ok(self) -> bool:
        return (self.same_structure and self.detections > 0 and self.max_abs <= 1e-9 * max(1.0, self.max_ref)
                and self.params_after == self.expected_params)

    @property
    def detail(self) -> str:
        return (f"same detections: {self.same_structure} ({self.detections}), max|Δ| {self.max_abs:.2e} (max|y| {self.max_ref:.2e}), "
                f"params {self.params_after} vs expected {self.expected_params}")


def _compare(a: Any, b: Any) -> tuple[bool, float, float]:
    fa, sa = tree_flatten(a)
    fb, sb = tree_flatten(b)
    if sa != sb or len(fa) != len(fb):
        return False, float("inf"), 0.0
    worst, top = 0.0, 0.0
    for x, y in zip(fa, fb, strict=True):
        if not isinstance(x, torch.Tensor):
            continue
        if x.shape != y.shape or x.dtype != y.dtype:
            return False, float("inf"), top
        if not x.is_floating_point():  # labels
            if not torch.equal(x, y):
                return False, float("inf"), top
            continue
        if x.numel():
            worst = max(worst, (x - y).abs().max().item())
            top = max(top, x.abs().max().item())
    return True, worst, top


def _order_ties(want: Any, got: Any) -> Any:
    """``got`` with each image's detections reordered, within runs of exactly equal scores in ``want``,
    to the order of ``want`` (nearest box first): the order of tied detections is unspecified (the
    sort behind NMS and top-k is not stable), so it is not part of what the two models must agree on."""
    if not isinstance(want, list) or not isinstance(got, list) or len(want) != len(got):
        return got
    out = []
    for w, g in zip(want, got, strict=True):
        if not (isinstance(w, dict) and isinstance(g, dict) and "scores" in w and "scores" in g
                and w["scores"].shape == g["scores"].shape and "boxes" in w):
            out.append(g)
            continue
        sw, n = w["scores"], w["scores"].numel()
        perm = list(range(n))
        start = 0
        while start < n:
            end = start + 1
            while end < n and sw[end] == sw[start]:
                end += 1
            if end - start > 1:  # a run of ties: match each wanted box to the nearest one left
                free = list(range(start, end))
                for i in range(start, end):
                    j = min(free, key=lambda j: (w["boxes"][i] - g["boxes"][j]).abs().max().item())
                    free.remove(j)
                    perm[i] = j
            start = end
        idx = torch.as_tensor(perm, dtype=torch.long)
        out.append({k: v[idx] if isinstance(v, torch.Tensor) and v.shape[:1] == (n,) else v for k, v in g.items()})
    return out


def _removed_share(model: torch.nn.Module, spaces: dict[str, SearchSpace], fraction: float = 0.5) -> float:
    before = sum(p.numel() for p in model.parameters())
    gone = 0
    for path, space in spaces.items():
        sub = model.get_submodule(path)
        units = {g.id: list(range(int(g.num_units * fraction))) for g in space.prunable_groups
                 if int(g.num_units * fraction) >= 1}
        gone += sum(p.numel() for p in sub.parameters()) - expected_params(sub, space, units)
    return gone / before


@contextlib.contextmanager
def _outputs(model: torch.nn.Module, regions: Iterable[str]):
    """The outputs of each region's calls (a list per region) while the block runs."""
    seen: dict[str, list] = {}
    handles = []
    for p in regions:
        seen[p] = []
        handles.append(model.get_submodule(p).register_forward_hook(lambda m, a, out, p=p: seen[p].append(out)))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def check_detector(model: torch.nn.Module, example: Any, fresh: Iterable[Any], *, regions: Iterable[str],
                   fraction: float = 0.3, seed: int = 0, **space_options) -> DetectionResult:
    """``example`` and each item of ``fresh`` are the model's first positional argument (a list of
    images for torchvision's detectors); each fresh batch runs through both models."""
    ref = copy.deepcopy(model).double().eval()
    _decorrelate(ref, seed)
    example = to_double(example)
    t0 = time.perf_counter()
    spaces = search_regions(ref, (example,), regions, **space_options)
    secs = time.perf_counter() - t0
    g = torch.Generator().manual_seed(seed)
    units = {p: random_units(s, fraction, g) for p, s in spaces.items()}
    expected = count_params(ref)
    for p, s in spaces.items():
        sub = ref.get_submodule(p)
        expected -= count_params(sub) - expected_params(sub, s, units[p])
        s.zero_(sub, units[p])
    compact = compress_regions(ref, spaces, units)
    same, worst, top, n = True, 0.0, 0.0, 0
    for batch in [example, *fresh]:
        batch = to_double(batch)
        with _outputs(ref, spaces) as inner_ref, _outputs(compact, spaces) as inner:
            want = ref(batch)
            got = compact(batch)
        # what the model returns, and what each region returned (raw scores and box deltas, not
        # only what survives thresholds and clipping)
        for a, b in [(want, _order_ties(want, got)), *((inner_ref[p], inner[p]) for p in spaces)]:
            ok, w, t = _compare(a, b)
            same, worst, top = same and ok, max(worst, w), max(top, t)
        n += sum(len(d["boxes"]) for d in want if isinstance(d, dict) and "boxes" in d) if isinstance(want, list) \
            else 0
    return DetectionResult(spaces, units, worst, top, same, n, count_params(compact), expected,
                           _removed_share(ref, spaces), secs)
