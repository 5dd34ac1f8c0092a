"""Choosing which units to remove: global ranking by saliency until a cost target is reached.

Within a group, units can only go in *chunks* so that the number kept stays a multiple of the
group's divisor and at least one chunk (at least one unit) is kept; a chunk is ranked by its
highest score. Chunks of all groups are ranked together (lowest first, ties by unit id) and taken
until their summed cost reaches the target.

Examples
--------
>>> import torch
>>> scores = torch.tensor([0.1, 0.9, 0.2, 0.3, 0.05])
>>> alive = torch.ones(5, dtype=torch.bool)
>>> offsets = torch.tensor([0, 2, 5])            # group 0: units 0-1, group 1: units 2-4
>>> select(scores, alive, offsets, [1, 1], torch.ones(5), 3.0).tolist()
[0, 2, 4]
>>> select(scores, alive, offsets, [1, 1], torch.ones(5), 9.0).tolist()   # one unit kept per group
[0, 2, 4]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["select", "select_exact", "ranked_chunks", "Budget", "ExactReduction"]


def ranked_chunks(scores: torch.Tensor, alive: torch.Tensor, offsets: torch.Tensor,
                  divisors: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The removable chunks of alive units, lowest-ranked first: ``(ids, ends)``, the global ids
    chunk after chunk and the end of each chunk in ``ids``.

    ``offsets`` (``G+1``) delimit the groups' global ids; ``divisors[g]`` is the chunk size of
    group ``g``; every group keeps its last chunk. Vectorised: a few sorts and scatters over all
    units, no loop over groups.
    """
    none = (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    if not len(divisors):
        return none
    scores, alive = scores.cpu().double(), alive.cpu()
    offsets = torch.as_tensor(offsets, dtype=torch.long).cpu()
    G = len(divisors)
    group_of = torch.repeat_interleave(torch.arange(G), offsets[1:] - offsets[:-1])
    ids = alive.nonzero().flatten()
    if not ids.numel():
        return none
    # alive ids by (score, id): a stable sort of ids in ascending order
    by_score = ids[torch.sort(scores[ids], stable=True).indices]
    d = torch.as_tensor(divisors, dtype=torch.long)
    U = scores.numel()
    if bool((d == 1).all()):  # chunks are single units: keep each group's last unit in (score, id) order
        rank = torch.empty(U, dtype=torch.long)
        rank[by_score] = torch.arange(by_score.numel())
        last = torch.full((G,), -1, dtype=torch.long).scatter_reduce(0, group_of[by_score], rank[by_score], "amax")
        cand = by_score[rank[by_score] != last[group_of[by_score]]]
        return cand, torch.arange(1, cand.numel() + 1)
    # then by (group, score, id): another stable sort, on the more significant key
    ids = by_score[torch.sort(group_of[by_score], stable=True).indices]
    grp = group_of[ids]
    n = torch.bincount(grp, minlength=G)  # alive units per group
    pos = torch.arange(ids.numel()) - (torch.cumsum(n, 0) - n)[grp]  # rank inside its group, lowest score first
    first = n % d  # the first chunk is the remainder, so what is kept stays a multiple of d
    removable = torch.where(n > d, n - d, 0)  # keep the last chunk of d
    keep = pos < removable[grp]
    ids, grp, pos = ids[keep], grp[keep], pos[keep]
    if not ids.numel():
        return none
    f = first[grp]
    local = torch.where(pos < f, 0, (pos - f) // d[grp] + (f > 0).long())
    n_local = torch.where(removable > 0, (first > 0).long() + (removable - first) // d, 0)
    chunk = local + (torch.cumsum(n_local, 0) - n_local)[grp]
    n_chunks = int(n_local.sum())
    key = torch.full((n_chunks,), -float("inf"), dtype=torch.float64).scatter_reduce(
        0, chunk, scores[ids], "amax")
    first_id = torch.full((n_chunks,), float(U), dtype=torch.float64).scatter_reduce(
        0, chunk, ids.double(), "amin")
    # lexicographic (score, id) order: sort by id first, then a stable sort by score
    order = torch.sort(first_id, stable=True).indices
    order = order[torch.sort(key[order], stable=True).indices]
    place = torch.empty(n_chunks, dtype=torch.long)
    place[order] = torch.arange(n_chunks)  # each chunk's place in the removal order
    ids = ids[torch.sort(place[chunk], stable=True).indices]
    return ids, torch.cumsum(torch.bincount(chunk, minlength=n_chunks)[order], 0)


def select(scores: torch.Tensor, alive: torch.Tensor, offsets: torch.Tensor, divisors: Sequence[int],
           cost: torch.Tensor, target: float) -> torch.Tensor:
    """Global ids (sorted) of the lowest-ranked chunks of alive units whose summed ``cost`` reaches
    ``target`` (see :func:`ranked_chunks`). Returns fewer units when every group is down to its
    last chunk."""
    ids, ends = ranked_chunks(scores, alive, offsets, divisors)
    if target <= 0 or not ends.numel():
        return torch.zeros(0, dtype=torch.long)
    spent = torch.cumsum(cost.cpu().double()[ids], 0)[ends - 1]  # after each chunk
    chunk_cost = spent - torch.cat([spent.new_zeros(1), spent[:-1]])
    n = int(((spent - chunk_cost) < target).sum())  # chunks taken: those started below the target
    return _sorted_ids(ids[: int(ends[n - 1])], scores.numel()) if n else torch.zeros(0, dtype=torch.long)


def select_exact(scores: torch.Tensor, alive: torch.Tensor, offsets: torch.Tensor, divisors: Sequence[int],
                 removed: torch.Tensor, reduction: Callable[[torch.Tensor], float], target: float,
                 slack: float = 0.0, scan: int = 512) -> torch.Tensor:
    """Global ids (sorted) of the lowest-ranked chunks whose removal, together with the units
    already ``removed`` (a mask), makes ``reduction(mask)`` reach ``target``; all of them if it cannot.

    ``reduction`` is the exact cost a set of units saves (monotone): a binary search finds the
    fewest leading chunks that reach the target. The last of them may overshoot (a whole attention
    head after many small neurons): then chunks taken before it are given back, most salient first,
    as long as the target stays reached, until the overshoot is within ``slack`` (at most ``scan``
    tries). The result lands just above the target, keeping the units that matter most.
    """
    order, ends = ranked_chunks(scores, alive, offsets, divisors)
    if not ends.numel() or reduction(removed) >= target:
        return torch.zeros(0, dtype=torch.long)
    chunk_of = torch.repeat_interleave(torch.arange(ends.numel()), torch.diff(ends, prepend=ends.new_zeros(1)))

    def mask_of(taken: torch.Tensor) -> torch.Tensor:
        mask = removed.clone()
        mask[order[taken[chunk_of]]] = True
        return mask

    def leading(k: int) -> torch.Tensor:
        mask = removed.clone()
        mask[order[: int(ends[k - 1])]] = True
        return mask

    lo, hi = 1, ends.numel()  # the fewest leading chunks reaching the target: in [lo, hi]
    if reduction(leading(hi)) < target:
        return _sorted_ids(order, scores.numel())
    while lo < hi:
        mid = (lo + hi) // 2
        if reduction(leading(mid)) >= target:
            hi = mid
        else:
            lo = mid + 1
    taken = torch.zeros(ends.numel(), dtype=torch.bool)
    taken[:lo] = True
    over = reduction(leading(lo)) - target
    for c in list(reversed(range(lo - 1)))[:scan]:  # give back the most salient first
        if over <= slack:
            break
        taken[c] = False
        saved = reduction(mask_of(taken))
        if saved >= target:
            over = saved - target
        else:
            taken[c] = True
    return mask_of(taken).logical_and_(~removed).nonzero().flatten()


def _sorted_ids(ids: torch.Tensor, n: int) -> torch.Tensor:
    """``ids`` (distinct, < ``n``) in ascending order, without a sort."""
    mask = torch.zeros(n, dtype=torch.bool)
    mask[ids] = True
    return mask.nonzero().flatten()


class ExactReduction:
    """What removing a set of units saves, exactly, from a search space's cost model
    (:class:`hesso.space.CostsLike`): ``reduction(mask)`` for a mask over HESSO's global unit ids."""

    def __init__(self, costs, kind: str, group_ids: Sequence[str], offsets: torch.Tensor):
        self.costs, self.kind = costs, kind
        self.total = float(costs.total(kind))
        self.group_ids, self.offsets = list(group_ids), torch.as_tensor(offsets, dtype=torch.long)
        self._inc = None
        if all(hasattr(costs, a) for a in ("group_ids", "inc_group", "inc_unit", "remaining_from_incidences")):
            where = {g: i for i, g in enumerate(self.group_ids)}
            base = np.array([self.offsets[where[g]] if g in where else -1 for g in costs.group_ids], np.int64)
            start = base[costs.inc_group] if len(base) else np.zeros(0, np.int64)
            self._inc = np.where(start >= 0, start + costs.inc_unit, -1)  # global unit of each incidence

    def __call__(self, mask: torch.Tensor) -> float:
        m = mask.cpu().numpy().astype(bool)
        if self._inc is not None:
            gone = np.zeros(self._inc.shape[0], bool)
            ok = self._inc >= 0
            gone[ok] = m[self._inc[ok]]
            return self.total - self.costs.remaining_from_incidences(self.kind, gone)
        removed: dict[str, list[int]] = {}
        for gi, gid in enumerate(self.group_ids):
            lo, hi = int(self.offsets[gi]), int(self.offsets[gi + 1])
            us = np.flatnonzero(m[lo:hi])
            if us.size:
                removed[gid] = us.tolist()
        return self.total - float(self.costs.remaining(self.kind, removed))


class Budget:
    """A removal target in some cost unit, spread evenly over the pruning periods.

    ``kind`` is ``"units"`` (cost 1 per unit, target ``⌊s·N⌋`` units split by
    :func:`hesso.schedule.quotas`), ``"flops"`` or ``"params"`` (cost from the search space, target
    ``r·total``, cumulative ``r·total·(p+1)/P`` after period ``p``).
    """

    def __init__(self, kind: str, fraction: float, unit_cost: torch.Tensor, total: float, periods: int):
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"target {kind} reduction must be in [0, 1), got {fraction}")
        self.kind, self.fraction, self.periods = kind, float(fraction), periods
        self.unit_cost = unit_cost.double()
        self.total = float(total)
        if kind == "units":
            from hesso.schedule import quotas

            q = quotas(int(fraction * unit_cost.numel()), periods)
            self._cumulative = [float(sum(q[: p + 1])) for p in range(periods)]
        else:
            self._cumulative = [fraction * self.total * (p + 1) / periods for p in range(periods)]

    @property
    def target(self) -> float:
        """The whole target, in cost units."""
        return self._cumulative[-1]

    def period_target(self, period: int, removed: float) -> float:
        """Cost still to remove in ``period`` given ``removed`` so far."""
        return self._cumulative[period] - removed

    def __repr__(self) -> str:
        return f"Budget({self.kind}, {self.fraction:.1%}, target {self.target:,.0f} over {self.periods} periods)"
