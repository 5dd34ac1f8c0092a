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

from collections.abc import Sequence

import torch

__all__ = ["select", "Budget"]


def select(scores: torch.Tensor, alive: torch.Tensor, offsets: torch.Tensor, divisors: Sequence[int],
           cost: torch.Tensor, target: float) -> torch.Tensor:
    """Global ids (sorted) of the lowest-scored alive units whose summed ``cost`` reaches ``target``.

    ``offsets`` (``G+1``) delimit the groups' global ids; ``divisors[g]`` is the chunk size of
    group ``g``. Returns fewer units when every group is down to its last chunk. Vectorised: a
    few sorts and scatters over all units, no loop over groups.
    """
    empty = torch.zeros(0, dtype=torch.long)
    if target <= 0 or not len(divisors):
        return empty
    scores, alive, cost = scores.cpu().double(), alive.cpu(), cost.cpu().double()
    offsets = torch.as_tensor(offsets, dtype=torch.long).cpu()
    G = len(divisors)
    group_of = torch.repeat_interleave(torch.arange(G), offsets[1:] - offsets[:-1])
    ids = alive.nonzero().flatten()
    if not ids.numel():
        return empty
    # alive ids by (score, id): a stable sort of ids in ascending order
    by_score = ids[torch.sort(scores[ids], stable=True).indices]
    d = torch.as_tensor(divisors, dtype=torch.long)
    U = scores.numel()
    if bool((d == 1).all()):  # chunks are single units: keep each group's last unit in (score, id) order
        rank = torch.empty(U, dtype=torch.long)
        rank[by_score] = torch.arange(by_score.numel())
        last = torch.full((G,), -1, dtype=torch.long).scatter_reduce(0, group_of[by_score], rank[by_score], "amax")
        cand = by_score[rank[by_score] != last[group_of[by_score]]]
        before = torch.cumsum(cost[cand], 0) - cost[cand]
        return _sorted_ids(cand[before < target], U)
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
        return empty
    f = first[grp]
    local = torch.where(pos < f, 0, (pos - f) // d[grp] + (f > 0).long())
    n_local = torch.where(removable > 0, (first > 0).long() + (removable - first) // d, 0)
    chunk = local + (torch.cumsum(n_local, 0) - n_local)[grp]
    n_chunks = int(n_local.sum())
    key = torch.full((n_chunks,), -float("inf"), dtype=torch.float64).scatter_reduce(
        0, chunk, scores[ids], "amax")
    first_id = torch.full((n_chunks,), float(scores.numel()), dtype=torch.float64).scatter_reduce(
        0, chunk, ids.double(), "amin")
    chunk_cost = torch.zeros(n_chunks, dtype=torch.float64).index_add_(0, chunk, cost[ids])
    # lexicographic (score, id) order: sort by id first, then a stable sort by score
    order = torch.sort(first_id, stable=True).indices
    order = order[torch.sort(key[order], stable=True).indices]
    before = torch.cumsum(chunk_cost[order], 0) - chunk_cost[order]
    taken = torch.zeros(n_chunks, dtype=torch.bool)
    taken[order[before < target]] = True
    return _sorted_ids(ids[taken[chunk]], U)


def _sorted_ids(ids: torch.Tensor, n: int) -> torch.Tensor:
    """``ids`` (distinct, < ``n``) in ascending order, without a sort."""
    mask = torch.zeros(n, dtype=torch.bool)
    mask[ids] = True
    return mask.nonzero().flatten()


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
