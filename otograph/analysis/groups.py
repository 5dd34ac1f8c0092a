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
    uniform = []
    for a in range(L.ndim):
        moved = np.moveaxis(L, a, 0).reshape(L.shape[a], -1)
        uniform.append((moved == moved[:, :1]).all(1))
        if uniform[-1].all():  # every slab along this axis holds one label: all of them are aligned
            return np.zeros(0, L.dtype)
    labs, inv = np.unique(L.ravel(), return_inverse=True)
    ok = np.zeros(labs.size, bool)
    for a, u in enumerate(uniform):
        pos_u = np.broadcast_to(u.reshape([-1 if i == a else 1 for i in range(L.ndim)]), L.shape).ravel()
        ok |= np.bincount(inv, weights=~pos_u, minlength=labs.size) == 0
    return labs[(~ok) & (labs >= 0)]


def _align(an: Analysis, n: int) -> np.ndarray:
    """Union until every value's removable positions are whole slabs (tensors stay rectangular)."""
    ea, eb = an.edges()
    labels = components(n, ea, eb)
    for _ in range(20):
        added = False
        # a pinned component is never removed: how it lies in a tensor does not matter
        pinned = np.zeros(n + 1, bool)  # by label; the last entry stands for -1 (no unit)
        if an.pins:
            pinned[labels[np.concatenate([ids for ids, _ in an.pins])]] = True
        for s in (s for v in an.slots.values() for s in flatten_slots(v)):
            if s.ids is None:
                continue
            vary = varying_axes(s.ids)
            if len(vary) < 2:
                continue
            ids = s.ids.reshape([s.ids.shape[a] for a in vary])
            L = np.where(ids >= 0, labels[np.maximum(ids, 0)], -1)
            L[pinned[L]] = -1
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
    elements = _elements(entries)
    cand = _candidates(an, labels, len(entries), elements)
    pinned = _pinned(an, labels, cand)
    params = dict(an.gm.named_parameters())
    groups: list[Group] = []
    unit_comp: dict[tuple[str, int], int] = {}
    used_ids: dict[str, int] = {}
    found = cand.groups(pinned)
    group_of = np.full(labels.shape[0], -1, np.int64)  # component → its group's index
    unit_of = np.full(labels.shape[0], -1, np.int64)   # component → its unit in that group
    for gi, (_, comps) in enumerate(found):
        group_of[comps], unit_of[comps] = gi, np.arange(len(comps))
    segments = _segments(labels, entries, elements, group_of, unit_of)
    for gi, (eis, comps) in enumerate(found):
        reasons = [pinned[c] for c in comps if c in pinned]
        g = _group(an, [(entries[i], segments[gi, i]) for i in eis], len(comps), used_ids,
                   reasons[0] if reasons else None)
        unit_comp.update({(g.id, u): c for u, c in enumerate(comps)})
        groups.append(g)
    costs = build_costs(an, labels, group_of, unit_of, [g.id for g in groups])
    saved = {k: costs.unit_savings(k, [g.num_units for g in groups]) for k in KINDS}
    groups = [dataclasses.replace(g, unit_params=torch.from_numpy(saved["params"][i]),
                                  unit_flops=torch.from_numpy(saved["flops"][i])) for i, g in enumerate(groups)]
    result = AnalysisResult(an, labels, unit_comp)
    _annotate(an, result, groups, group_of)
    return SearchSpace(groups, costs.total("params"), costs.total("flops"), tuple(sorted(set(an.opaque_ops.values()))),
                       an.traced, result, prunable_params=_prunable_params(groups, params), graph=an.graph,
                       costs=costs)


@dataclass
class _Candidates:
    """Components some value carries, each with the set of table entries (tensor axes) it touches:
    ``comps`` (sorted) and, per component, ``sig`` (a hash of its entry set) and its entries
    ``ents[bounds[i]:bounds[i+1]]``."""

    comps: np.ndarray
    sig: np.ndarray
    ents: np.ndarray
    bounds: np.ndarray

    def alike(self) -> dict[int, int]:
        """How many components share each entry set (by signature)."""
        keys, counts = np.unique(self.sig, return_counts=True)
        return dict(zip(keys.tolist(), counts.tolist(), strict=True))

    def groups(self, pinned: dict[int, str]) -> list[tuple[list[int], list[int]]]:
        """``(entries, components)`` per group: components with the same entries and pinned state,
        groups in the order of their smallest component."""
        is_pinned = np.isin(self.comps, np.fromiter(pinned, np.int64, len(pinned)))
        key = self.sig * 2 + is_pinned  # wraps around like the hash: fine for a key
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        members = np.argsort(inv, kind="stable")
        counts = np.bincount(inv)
        starts = np.concatenate([[0], np.cumsum(counts)])
        out = []
        for g in order.tolist():
            rep = int(first[g])
            comps = self.comps[members[starts[g]:starts[g + 1]]].tolist()
            out.append((self.ents[self.bounds[rep]:self.bounds[rep + 1]].tolist(), comps))
        return out


def _elements(entries: list) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, entry_of)``: the table's elements, entry by entry, and the entry each belongs to."""
    if not entries:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return (np.concatenate([e.ids for e in entries]),
            np.repeat(np.arange(len(entries)), [e.size for e in entries]))


def _candidates(an: Analysis, labels: np.ndarray, num_entries: int,
                elements: tuple[np.ndarray, np.ndarray]) -> _Candidates:
    """Components some value carries, with the table entries (tensor axes) each touches."""
    seen = np.zeros(labels.shape[0], bool)
    seen[labels[an.seen()]] = True
    E = max(1, num_entries)
    ids, entry_of = elements  # pair each element's component with its entry
    comp = labels[ids]
    pairs = _sorted_unique(comp * E + entry_of)
    comps, ents = pairs // E, pairs % E
    keep = seen[comps]
    comps, ents = comps[keep], ents[keep]
    starts = np.flatnonzero(np.r_[True, np.diff(comps) != 0]) if comps.size else np.zeros(0, np.int64)
    codes = np.random.default_rng(0).integers(1, 2**62, size=E, dtype=np.int64)  # a set hash: sum of codes
    sig = np.add.reduceat(codes[ents], starts) if comps.size else np.zeros(0, np.int64)
    return _Candidates(comps[starts], sig, ents, np.r_[starts, ents.size])


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` for a large integer array, by one sort (faster than numpy's hash path here)."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if a.size else a


def _pin_removable_rows(an: Analysis, labels: np.ndarray, cand: _Candidates, pinned: dict[int, str]) -> None:
    """Pin one unit of each row that ``require_kept`` asked to keep a position and that could lose
    them all: a row is safe when it holds a pinned unit or every free unit of some group (a group
    never loses all its units)."""
    if not an.kept_rows:
        return
    sig_of = dict(zip(cand.comps.tolist(), cand.sig.tolist(), strict=True))
    free: dict[int, set[int]] = {}
    for c, sg in sig_of.items():
        if c not in pinned:
            free.setdefault(sg, set()).add(c)
    for rows, reason in an.kept_rows:
        for row in labels[rows]:
            comps = set(row.tolist())
            if any(c in pinned or c not in sig_of for c in comps):
                continue
            if any(free[sg] <= comps for sg in {sig_of[c] for c in comps}):
                continue
            c = min(comps)
            pinned[c] = reason
            free[sig_of[c]].discard(c)


def _pinned(an: Analysis, labels: np.ndarray, cand: _Candidates) -> dict[int, str]:
    """Unprunable components with the first reason found for each."""
    fiber_comps: dict[int, str] = {}
    for rows, reason in an.fibers:  # rows that had to end up inside one unit
        lab = labels[rows]
        split = (lab != lab[:, :1]).any(1)
        an.pin(rows[split], reason)
        for c in np.unique(lab[~split, 0]).tolist():
            fiber_comps.setdefault(c, reason)
    pinned: dict[int, str] = {}
    if an.pins:  # each pinned component with the reason of the first pin that reached it
        comps, first = np.unique(labels[np.concatenate([ids for ids, _ in an.pins])], return_index=True)
        pin_of = np.searchsorted(np.cumsum([ids.size for ids, _ in an.pins]), first, side="right")
        pinned = {c: an.pins[i][1] for c, i in zip(comps.tolist(), pin_of.tolist(), strict=True)}
    _pin_removable_rows(an, labels, cand, pinned)
    # a reduction whose fibers merged a whole space into a single unit leaves nothing to remove
    if fiber_comps:
        alike = cand.alike()
        where = {c: i for i, c in enumerate(cand.comps.tolist())}
        for c, reason in fiber_comps.items():
            if c in where and alike[int(cand.sig[where[c]])] == 1:
                pinned.setdefault(c, f"{reason} (it spans the whole space)")
    return pinned


def _segments(labels: np.ndarray, entries: list, elements: tuple[np.ndarray, np.ndarray], group_of: np.ndarray,
              unit_of: np.ndarray) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """``(group, entry) → (positions, units)``: where along the entry's axis the group's units sit,
    for every pair at once (one sort of the table's elements by group and entry)."""
    ids, entry_of = elements
    g = group_of[labels[ids]]
    keep = np.flatnonzero(g >= 0)
    if not keep.size:
        return {}
    keep = keep[np.lexsort((entry_of[keep], g[keep]))]  # by group, then entry, positions in order
    gk, ek = g[keep], entry_of[keep]
    pos = ids[keep] - np.array([e.start for e in entries], np.int64)[ek]
    units = unit_of[labels[ids[keep]]]
    cuts = np.flatnonzero((gk[1:] != gk[:-1]) | (ek[1:] != ek[:-1])) + 1
    bounds = np.r_[0, cuts, keep.size].tolist()
    return {(int(gk[a]), int(ek[a])): (pos[a:b].copy(), units[a:b].copy())
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)}


def _group(an: Analysis, parts: list, num_units: int, used_ids: dict, reason: str | None) -> Group:
    """A group from its ``(entry, (positions, units))`` parts; costs come later."""
    members = [Member(e.param, e.axis, torch.from_numpy(pos), torch.from_numpy(units), e.role, e.size,
                      an.grad_free.get((e.param, e.axis), False)) for e, (pos, units) in parts]
    zeros = torch.zeros(num_units, dtype=torch.float64)
    return Group(_group_id(members, used_ids), num_units, tuple(members), reason is None, reason, zeros, zeros)


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


def _annotate(an: Analysis, res: AnalysisResult, groups: list[Group], group_of: np.ndarray) -> None:
    """Each node of the dependency graph gets ``groups``: the ids of the groups its value carries
    (``group_of``: component → index of its group, -1 for none)."""
    for node, v in an.slots.items():
        arrays = [a for s in flatten_slots(v) for a in ([s.ids] if s.ids is not None else list(s.pax or ()))
                  if a is not None]
        found = (np.flatnonzero(np.bincount(np.concatenate([group_of[res.labels[a[a >= 0]]] for a in arrays]) + 1,
                                            minlength=len(groups) + 1)[1:]) if arrays else [])
        an.graph.nodes[node.name]["groups"] = tuple(groups[i].id for i in found)


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
