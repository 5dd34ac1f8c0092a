"""From the analysis pass to a :class:`SearchSpace`: components, slab alignment, groups, costs."""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from otograph.analysis.costs import KINDS, build_costs
from otograph.analysis.engine import Analysis
from otograph.analysis.slots import flatten_slots, varying_axes
from otograph.analysis.space import Group, Member, SearchSpace
from otograph.analysis.unionfind import components

__all__ = ["AnalysisResult", "build_space"]

log = logging.getLogger(__name__)


@dataclass
class AnalysisResult:
    """What the rewriter needs: per-node slots, element labels and each unit's component."""

    analysis: Analysis
    labels: np.ndarray
    unit_comp: dict[tuple[str, int], int] = field(default_factory=dict)

    def removed_mask(self, removed_comps: np.ndarray) -> np.ndarray:
        """Boolean per element: is it removed?"""
        gone = np.zeros(self.labels.shape[0] + 1, bool)
        gone[removed_comps] = True
        return gone[self.labels]


def _slab_aligned(L: np.ndarray) -> np.ndarray:
    """Labels (≥0) whose positions are not a union of whole slabs along any single axis."""
    flat = L.ravel()
    labs, inv = np.unique(flat, return_inverse=True)
    ok = np.zeros(labs.size, bool)
    for a in range(L.ndim):
        moved = np.moveaxis(L, a, 0).reshape(L.shape[a], -1)
        uniform = (moved == moved[:, :1]).all(1)
        pos_u = np.broadcast_to(uniform.reshape([-1 if i == a else 1 for i in range(L.ndim)]), L.shape).ravel()
        bad = np.zeros(labs.size, np.int64)
        np.add.at(bad, inv, ~pos_u)
        ok |= bad == 0
    return labs[(~ok) & (labs >= 0)]


def _align(an: Analysis, n: int) -> np.ndarray:
    """Union until every value's removable positions are whole slabs (tensors stay rectangular)."""
    ea, eb = an.edges()
    labels = components(n, ea, eb)
    for _ in range(20):
        added = False
        for s in (s for v in an.slots.values() for s in flatten_slots(v)):
            if s.ids is None:
                continue
            vary = varying_axes(s.ids)
            if len(vary) < 2:
                continue
            ids = s.ids.reshape([s.ids.shape[a] for a in vary])
            L = np.where(ids >= 0, labels[np.maximum(ids, 0)], -1)
            bad = _slab_aligned(L)
            if bad.size == 0:
                continue
            axis = max(range(ids.ndim), key=lambda a: (ids.shape[a], a))
            slabs = np.moveaxis(ids, axis, 0).reshape(ids.shape[axis], -1)
            for row in slabs:
                if (row < 0).any():
                    an.pin(row, "shares a tensor slab with positions no unit owns")
                an.union_all(row)
            added = True
        if not added:
            return labels
        ea, eb = an.edges()
        labels = components(n, ea, eb)
    raise RuntimeError("slab alignment did not converge")


def _module_of(param: str) -> str:
    return param.rsplit(".", 1)[0] if "." in param else param


def build_space(an: Analysis) -> SearchSpace:
    """Components of the unions → units; units with the same members → groups; costs per unit."""
    labels = _align(an, an.table.size)
    entries = list(an.table.entries.values())
    comp_entries = _candidates(an, labels, entries)
    pinned = _pinned(an, labels, comp_entries)
    by_key: dict[tuple, list[int]] = defaultdict(list)
    for c, eis in comp_entries.items():
        by_key[(tuple(eis), c in pinned)].append(c)
    params = dict(an.gm.named_parameters())
    groups: list[Group] = []
    unit_comp: dict[tuple[str, int], int] = {}
    used_ids: dict[str, int] = {}
    for (eis, is_pinned), comps in sorted(by_key.items(), key=lambda kv: min(kv[1])):
        comps = sorted(comps)
        g = _group(an, labels, [entries[i] for i in eis], comps, used_ids,
                   next((pinned[c] for c in comps if c in pinned), None) if is_pinned else None)
        unit_comp.update({(g.id, u): c for u, c in enumerate(comps)})
        groups.append(g)
    costs = build_costs(an, labels, unit_comp, [g.id for g in groups])
    saved = {k: costs.unit_savings(k, [g.num_units for g in groups]) for k in KINDS}
    groups = [dataclasses.replace(g, unit_params=torch.from_numpy(saved["params"][i]),
                                  unit_flops=torch.from_numpy(saved["flops"][i])) for i, g in enumerate(groups)]
    result = AnalysisResult(an, labels, unit_comp)
    _annotate(an, result, groups)
    return SearchSpace(groups, costs.total("params"), costs.total("flops"), tuple(sorted(set(an.opaque_ops.values()))),
                       an.traced, result, prunable_params=_prunable_params(groups, params), graph=an.graph,
                       costs=costs)


def _candidates(an: Analysis, labels: np.ndarray, entries: list) -> dict[int, list[int]]:
    """Components some value carries, with the table entries (tensor axes) each touches."""
    seen = np.zeros(labels.shape[0], bool)
    s = an.seen()
    if s.size:
        seen[np.unique(labels[s])] = True
    if not entries:
        return {}
    # the table's elements are 0 … n-1, entry by entry: pair each element's component with its entry
    sizes = np.array([e.size for e in entries], np.int64)
    starts = np.array([e.start for e in entries], np.int64)
    entry_of = np.repeat(np.arange(len(entries)), sizes)
    comp = labels[np.concatenate([np.arange(a, a + n) for a, n in zip(starts, sizes, strict=True)])]
    pairs = np.unique(comp * len(entries) + entry_of)
    comps, ents = pairs // len(entries), pairs % len(entries)
    keep = seen[comps]
    comps, ents = comps[keep], ents[keep]
    bounds = np.flatnonzero(np.diff(comps)) + 1
    return {int(c[0]): e.tolist() for c, e in zip(np.split(comps, bounds), np.split(ents, bounds), strict=True)
            if c.size}


def _pinned(an: Analysis, labels: np.ndarray, comp_entries: dict[int, list[int]]) -> dict[int, str]:
    """Unprunable components with the first reason found for each."""
    fiber_comps: dict[int, str] = {}
    for rows, reason in an.fibers:  # rows that had to end up inside one unit
        lab = labels[rows]
        split = (lab != lab[:, :1]).any(1)
        an.pin(rows[split], reason)
        for c in np.unique(lab[~split, 0]).tolist():
            fiber_comps.setdefault(c, reason)
    pinned: dict[int, str] = {}
    for ids, reason in an.pins:
        for c in np.unique(labels[ids]):
            pinned.setdefault(int(c), reason)
    # a reduction whose fibers merged a whole space into a single unit leaves nothing to remove
    alike: dict[tuple, int] = defaultdict(int)
    for eis in comp_entries.values():
        alike[tuple(eis)] += 1
    for c, reason in fiber_comps.items():
        if c in comp_entries and alike[tuple(comp_entries[c])] == 1:
            pinned.setdefault(c, f"{reason} (it spans the whole space)")
    return pinned


def _group(an: Analysis, labels: np.ndarray, entries: list, comps: list[int], used_ids: dict,
           reason: str | None) -> Group:
    """One group and its members (positions and units per tensor axis); costs come later."""
    comp_unit = np.full(labels.shape[0], -1, np.int64)
    comp_unit[comps] = np.arange(len(comps))
    members = []
    for e in entries:
        lab = labels[e.ids]
        mask = np.isin(lab, comps)
        units = comp_unit[lab[mask]]
        members.append(Member(e.param, e.axis, torch.from_numpy(np.nonzero(mask)[0]), torch.from_numpy(units.copy()),
                              e.role, e.size, an.grad_free.get((e.param, e.axis), False)))
    zeros = torch.zeros(len(comps), dtype=torch.float64)
    return Group(_group_id(members, used_ids), len(comps), tuple(members), reason is None, reason, zeros, zeros)


def _prunable_params(groups: list[Group], params: dict) -> int:
    """Parameters left out if every unit of every prunable group went: each element counted once."""
    cut: dict[str, dict[int, int]] = defaultdict(dict)
    for g in groups:
        if g.prunable:
            for m in g.members:
                if m.param in params:
                    cut[m.param][m.axis] = cut[m.param].get(m.axis, 0) + m.positions.numel()
    total = 0
    for name, axes in cut.items():
        t = params[name]
        left = 1
        for a, n in enumerate(t.shape):
            left *= n - axes.get(a, 0)
        total += t.numel() - left
    return total


def _annotate(an: Analysis, res: AnalysisResult, groups: list[Group]) -> None:
    """Each node of the dependency graph gets ``groups``: the ids of the groups its value carries."""
    group_of = np.full(res.labels.shape[0], -1, np.int64)  # component → index of its group
    index = {g.id: i for i, g in enumerate(groups)}
    for (gid, _u), c in res.unit_comp.items():
        group_of[c] = index[gid]
    for node, v in an.slots.items():
        arrays = [a for s in flatten_slots(v) for a in ([s.ids] if s.ids is not None else list(s.pax or ()))
                  if a is not None]
        found = np.unique(np.concatenate([group_of[res.labels[a[a >= 0]]] for a in arrays])) if arrays else []
        an.graph.nodes[node.name]["groups"] = tuple(groups[i].id for i in found if i >= 0)


def _group_id(members: list[Member], used: dict[str, int]) -> str:
    """Stable, readable: the module of the first producer weight (``layer1.0.conv1``), ``#k`` if taken."""
    prod = [m for m in members if m.role == "producer" and m.axis == 0 and m.param.endswith("weight")]
    prod = prod or [m for m in members if m.role == "producer"] or members
    base = _module_of(prod[0].param)
    if prod[0].axis != 0:
        base = f"{prod[0].param}:{prod[0].axis}"
    k = used.get(base, 0)
    used[base] = k + 1
    return base if k == 0 else f"{base}#{k}"
