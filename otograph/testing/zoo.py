"""The model zoo: real models in sections (torchvision, timm, Hugging Face, YOLO), built small with
random weights, and one check per model. ``tools/zoo.py`` sweeps it into ``docs/zoo.md``; CI runs
:data:`QUICK`, a fixed sample of every section.

Every row ends in one status: ``exact`` (float64, ≥ 30 % random units of every prunable group zeroed,
compact vs zeroed within ``1e-9·max(1, max|y|)`` and the parameter count as predicted),
``unprunable`` (exact because nothing is prunable; the reason is the analysis's), ``failing``
(the model could not be traced or compressed; the reason is the error) or ``NOT EXACT`` (a bug).
"""

from __future__ import annotations

import gc
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from otograph.testing import zoo_models as M

__all__ = ["Case", "Entry", "Row", "sections", "QUICK", "SECTIONS", "run", "table"]

Case = M.Case

#: section names, in the order docs/zoo.md shows them
SECTIONS = ("torchvision", "torchvision segmentation", "torchvision video", "torchvision detection", "timm",
            "transformers", "yolo")

#: the fixed sample CI runs: a few small models of every section
QUICK = {"torchvision": ["resnet18"], "torchvision segmentation": ["lraspp_mobilenet_v3_large"],
         "torchvision video": ["mc3_18"], "torchvision detection": ["fasterrcnn_mobilenet_v3_large_320_fpn"],
         "timm": ["mobilenetv3"], "transformers": ["llama", "bert"], "yolo": ["yolov8n"]}


@dataclass(frozen=True)
class Entry:
    section: str
    name: str
    build: Callable[[], Case] = field(repr=False)
    check: str = "exact"  # or "detection": regions pruned inside a model that cannot be traced whole


@dataclass
class Row:
    section: str
    name: str
    status: str = "failing"
    reason: str = ""
    frontend: str = ""
    groups: int = 0
    prunable: int = 0
    prunable_share: float = 0.0
    removed50: float = 0.0
    seconds: float = 0.0
    max_abs: float | None = None


def sections(only: list[str] | None = None) -> dict[str, list[Entry]]:
    """Every section's entries (``only``: just these sections)."""
    makers = {"torchvision": M.torchvision_classification, "torchvision segmentation": M.torchvision_segmentation,
              "torchvision video": M.torchvision_video, "torchvision detection": M.torchvision_detection,
              "timm": M.timm_families, "transformers": M.transformers_families, "yolo": M.yolo}
    out = {}
    for name in SECTIONS:
        if only is None or name in only:
            out[name] = [Entry(name, n, b, c) for n, b, c in makers[name]()]
    return out


def removed_share(model: torch.nn.Module, space, fraction: float = 0.5) -> float:
    """Share of all parameters removed when every prunable group drops ``fraction`` of its units."""
    from otograph.testing.exact import expected_params

    units = {g.id: list(range(int(g.num_units * fraction))) for g in space.prunable_groups
             if int(g.num_units * fraction) >= 1}
    before = sum(p.numel() for p in model.parameters())
    return 1 - expected_params(model, space, units) / before


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200] if text else ''}"


def _why_unprunable(space) -> str:
    if space.opaque:
        return "opaque ops: " + ", ".join(sorted(space.opaque))[:200]
    reasons = Counter(g.reason for g in space.groups if not g.prunable and g.reason)
    return reasons.most_common(1)[0][0][:200] if reasons else "no group"


def _fill(row: Row, model, space, secs: float) -> None:
    row.groups, row.prunable = len(space.groups), len(space.prunable_groups)
    row.prunable_share = space.prunable_params / max(1, space.total_params)
    row.removed50, row.seconds = removed_share(model, space), secs


def _run_exact(row: Row, case: Case) -> None:
    from otograph.testing.exact import check_exact

    t0 = time.perf_counter()
    res = check_exact(case.model, case.example, case.fresh, frontend=case.frontend)  # traces a float64 copy
    _fill(row, case.model, res.space, time.perf_counter() - t0)
    row.max_abs = res.verification.max_abs
    if not res.ok:
        row.status, row.reason = "NOT EXACT", f"{res.verification}"[:200]
    elif not res.space.prunable_groups:
        row.status, row.reason = "unprunable", _why_unprunable(res.space)
    else:
        row.status = "exact"


def _run_detection(row: Row, case: Case) -> None:
    from otograph.testing.detection import check_detector

    res = check_detector(case.model, case.example, case.fresh, regions=case.regions, frontend=case.frontend)
    n_groups = sum(len(s.groups) for s in res.spaces.values())
    prunable = sum(len(s.prunable_groups) for s in res.spaces.values())
    total = sum(p.numel() for p in case.model.parameters())
    row.groups, row.prunable = n_groups, prunable
    row.prunable_share = sum(s.prunable_params for s in res.spaces.values()) / total
    row.removed50 = res.removed50
    row.seconds, row.max_abs = res.seconds, res.max_abs
    if not res.ok:
        row.status, row.reason = "NOT EXACT", res.detail[:200]
    elif not prunable:
        row.status, row.reason = "unprunable", "; ".join(_why_unprunable(s) for s in res.spaces.values())[:200]
    else:
        row.status = "exact"
        row.reason = "regions " + ", ".join(res.spaces)


def run(entry: Entry, *, verbose: bool = False) -> Row:
    """One row: build the model, check it; any error is the row's reason, never the sweep's end."""
    row = Row(entry.section, entry.name)
    try:
        case = entry.build()
    except Exception as e:  # noqa: BLE001 - a sweep reports, it does not stop
        row.reason = "builds no model: " + _first_line(e)
        return row
    row.frontend = case.frontend
    try:
        (_run_detection if entry.check == "detection" else _run_exact)(row, case)
    except Exception as e:  # noqa: BLE001
        if verbose:
            traceback.print_exc()
        row.status, row.reason = "failing", _first_line(e)
    del case
    gc.collect()
    return row


def table(rows: list[Row], targets: dict[str, float] | None = None) -> str:
    """A markdown table of rows."""
    head = ("| model | frontend | status | groups | prunable | params in prunable groups | removed at 50 % | "
            "check s | max abs diff (fp64) | reason |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        mx = "" if r.max_abs is None else f"{r.max_abs:.1e}"
        tgt = (targets or {}).get(r.name)
        flag = f" (target ≥ {tgt:.0%})" if tgt else ""
        status = f"**{r.status}**" if r.status in ("failing", "NOT EXACT") else r.status
        reason = r.reason.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r.name} | {r.frontend} | {status} | {r.groups} | {r.prunable} | {r.prunable_share:.1%} | "
                     f"{r.removed50:.1%}{flag} | {r.seconds:.2f} | {mx} | {reason} |")
    return "\n".join(lines)


def counts(rows: list[Row]) -> dict[str, Any]:
    """Rows per status."""
    return dict(Counter(r.status for r in rows))
