"""What the compact model will cost, exactly, for any set of removed units.

A cost (parameters, or FLOPs as :mod:`otograph.tracing.flops` counts them) is a sum of *terms*:
a parameter tensor, or the FLOPs one op counted on the example inputs. Each term scales with the
kept share of a few *factors*, the tensor axes it depends on: a weight between two shrinking groups
costs ``kept rows × kept columns``, not the sum of what each group saves alone::

    cost(removed) = Σ_t full_t · Π_{f ∈ t} (1 − removed_f / size_f),   removed_f = Σ_{u removed} count_{f,u}

where ``count_{f,u}`` is how many positions of factor ``f`` unit ``u`` holds. Evaluating it for a
candidate set is a few vectorised gathers and products, cheap enough for an optimizer to search.

Example:
    >>> import torch, otograph
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8),
    ...                           torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> space = otograph.search_space(net, torch.randn(1, 4))
    >>> c = space.costs
    >>> c.total("params"), c.remaining("params", {"0": [0, 1, 2, 3], "2": [0, 1, 2, 3]})
    (130, 50.0)
    >>> # 4·4+4 + 4·4+4 + 2·4+2: the middle weight keeps 4 of 8 rows *and* 4 of 8 columns
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from otograph.analysis.slots import Slot
from otograph.tracing.values import FLOPS, META, TensorInfo

__all__ = ["CostModel", "build_costs", "KINDS"]

KINDS = ("params", "flops")


@dataclass(frozen=True, eq=False)
class _Terms:
    full: np.ndarray      # (T,) cost of each term in the full model
    term: np.ndarray      # (P,) term of each (term, factor) pair
    factor: np.ndarray    # (P,) factor of each pair


@dataclass(frozen=True, eq=False)
class CostModel:
    """Exact ``params``/``flops`` of the compact model for any removed units (plain data)."""

    terms: dict[str, _Terms]
    sizes: np.ndarray        # (F,) positions along each factor
    inc_factor: np.ndarray   # (I,) incidences: factor f holds count positions of (group, unit)
    inc_group: np.ndarray    # (I,) index into ``group_ids``
    inc_unit: np.ndarray     # (I,)
    inc_count: np.ndarray    # (I,)
    group_ids: tuple[str, ...]

    def total(self, kind: str) -> int:
        """The full model's cost."""
        return int(round(float(self.terms[kind].full.sum())))

    def remaining(self, kind: str, removed: Mapping[str, Iterable[int]]) -> float:
        """The cost left once ``removed`` (``{group id: [unit, …]}``) is taken out."""
        index = {g: i for i, g in enumerate(self.group_ids)}
        gone = np.zeros(self.inc_factor.shape[0], bool)
        for gid, us in removed.items():
            us = np.asarray(list(us), np.int64)
            if us.size:
                gone |= (self.inc_group == index[gid]) & np.isin(self.inc_unit, us)
        return self.remaining_from_incidences(kind, gone)

    def remaining_from_incidences(self, kind: str, gone: np.ndarray) -> float:
        """:meth:`remaining` given a mask over the incidences (the fast path for a search)."""
        removed = np.bincount(self.inc_factor[gone], self.inc_count[gone], minlength=self.sizes.shape[0])
        frac = 1.0 - removed / np.maximum(self.sizes, 1)
        t = self.terms[kind]
        prod = np.ones(t.full.shape[0])
        np.multiply.at(prod, t.term, frac[t.factor])
        return float((t.full * prod).sum())

    def unit_savings(self, kind: str, num_units: Iterable[int]) -> list[np.ndarray]:
        """For every group (``num_units`` of each, in ``group_ids`` order), what removing each of its
        units alone saves, exactly, at the full model."""
        counts = np.asarray(list(num_units), np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        t = self.terms[kind]
        out = np.zeros(int(offsets[-1]))
        if t.term.size and self.inc_factor.size:
            # join incidences (factor f holds unit u) with the terms that factor f scales
            order = np.argsort(t.factor, kind="stable")
            fs = t.factor[order]
            lo = np.searchsorted(fs, self.inc_factor, "left")
            n = np.searchsorted(fs, self.inc_factor, "right") - lo
            inc = np.repeat(np.arange(self.inc_factor.shape[0]), n)
            pair = order[np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)]
            unit = offsets[self.inc_group[inc]] + self.inc_unit[inc]
            T = t.full.shape[0]
            key = unit * T + t.term[pair]
            share = 1.0 - self.inc_count[inc] / np.maximum(self.sizes[self.inc_factor[inc]], 1)
            by_key = np.argsort(key, kind="stable")  # (unit, term) pairs together, in their first order
            key, share = key[by_key], share[by_key]
            starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
            kept = np.multiply.reduceat(share, starts)  # what a term keeps once the unit is gone
            keys = key[starts]
            out += np.bincount(keys // T, t.full[keys % T] * (1.0 - kept), minlength=out.shape[0])
        return [out[offsets[i]:offsets[i + 1]] for i in range(counts.shape[0])]

    def __repr__(self) -> str:
        return (f"CostModel({self.total('params'):,} params, {self.total('flops'):,} FLOPs; "
                f"{self.sizes.shape[0]} factors)")


class _Builder:
    def __init__(self, an, labels: np.ndarray, group_of: np.ndarray, unit_of: np.ndarray):
        self.an, self.labels = an, labels
        self.gu = np.stack([group_of, unit_of], 1)  # component → (group index, unit), -1 for none
        self.factors: dict[tuple, int] = {}
        self.sizes: list[int] = []
        self.held: list[tuple[int, np.ndarray]] = []  # (factor, the components at its positions)
        self.terms = {k: ([], [], []) for k in KINDS}  # full, term, factor

    def factor(self, key: tuple, size: int, unit_of_position: np.ndarray) -> int:
        """The factor for ``key`` (created once): ``unit_of_position`` holds each position's component."""
        if key in self.factors:
            return self.factors[key]
        f = self.factors[key] = len(self.sizes)
        self.sizes.append(size)
        comp = unit_of_position[unit_of_position >= 0]
        if comp.size:
            self.held.append((f, comp))
        return f

    def incidences(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(factor, group, unit, count)``: how many positions of each factor each unit holds, by
        factor then component (one count over every factor's positions)."""
        if not self.held:
            return (np.zeros(0, np.int64),) * 3 + (np.zeros(0),)
        n = self.gu.shape[0]
        fs = np.repeat(np.array([f for f, _ in self.held], np.int64), [c.size for _, c in self.held])
        keys, counts = np.unique(fs * n + np.concatenate([c for _, c in self.held]), return_counts=True)
        gu = self.gu[keys % n]
        ok = gu[:, 0] >= 0
        return keys[ok] // n, gu[ok, 0], gu[ok, 1], counts[ok].astype(float)

    def param_factor(self, name: str, axis: int) -> int | None:
        e = self.an.table.entries.get((name, axis))
        if e is None:
            return None
        return self.factor(("p", name, axis), e.size, self.labels[e.ids])

    def value_factor(self, node, axis: int) -> int | None:
        s = self.an.slots.get(node)
        info = node.meta.get(META)
        if not isinstance(s, Slot) or s.ids is None or not isinstance(info, TensorInfo):
            return None
        axis %= s.ids.ndim
        if s.ids.shape[axis] == 1:
            return None  # broadcast: the axis never shrinks
        rows = np.moveaxis(s.ids, axis, 0).reshape(s.ids.shape[axis], -1)
        lab = np.where(rows >= 0, self.labels[np.maximum(rows, 0)], -1)
        uniform = (lab == lab[:, :1]).all(1) & (lab[:, 0] >= 0)
        return self.factor(("v", node.name, axis), info.shape[axis], np.where(uniform, lab[:, 0], -1))

    def term(self, kind: str, full: float, factors: Iterable[int | None]) -> None:
        fulls, terms, facs = self.terms[kind]
        t = len(fulls)
        fulls.append(float(full))
        for f in dict.fromkeys(f for f in factors if f is not None):
            terms.append(t)
            facs.append(f)

    def build(self, group_ids: list[str]) -> CostModel:
        terms = {k: _Terms(np.asarray(v[0], float), np.asarray(v[1], np.int64), np.asarray(v[2], np.int64))
                 for k, v in self.terms.items()}
        return CostModel(terms, np.asarray(self.sizes, np.int64), *self.incidences(), tuple(group_ids))


def build_costs(an, labels: np.ndarray, group_of: np.ndarray, unit_of: np.ndarray, group_ids: list[str]) -> CostModel:
    """The cost model of an analysed graph: a term per parameter tensor and per op that counted FLOPs.

    ``group_of``/``unit_of``: per component, the index (in ``group_ids``) of its group and its unit
    there (-1: none). A parameter scales with every axis the analysis knows; an op's FLOPs with the
    axes its rule declared (``Call.flop_axes``), or not at all (an op no unit can shrink).
    """
    b = _Builder(an, labels, group_of, unit_of)
    seen: set[int] = set()
    for name, p in an.gm.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        b.term("params", p.numel(), [b.param_factor(name, a) for a in range(p.ndim)])
    for node in an.gm.graph.nodes:
        flops = node.meta.get(FLOPS, 0)
        if not flops:
            continue
        specs = an.flop_specs.get(node) or [(1.0, ())]
        for share, axes in specs:
            factors = [b.param_factor(an.canon[id(x)], a) if isinstance(x, torch.Tensor) else b.value_factor(x, a)
                       for x, a in axes]
            b.term("flops", flops * share, factors)
    return b.build(group_ids)
