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
    group ``g``. Returns fewer units when every group is down to its last chunk.
    """
    if target <= 0:
        return torch.zeros(0, dtype=torch.long)
    scores, alive, cost = scores.cpu().double(), alive.cpu(), cost.cpu().double()
    ids_l, chunk_l, n_chunks = [], [], 0
    for gi, d in enumerate(divisors):  # once per period: a loop over groups is fine here
        lo, hi = int(offsets[gi]), int(offsets[gi + 1])
        ids = torch.arange(lo, hi)[alive[lo:hi]]
        n = ids.numel()
        if n <= d:
            continue
        ids = ids[torch.sort(scores[ids], stable=True).indices]
        first = n % d
        removable = n - d  # keep the last chunk of d
        pos = torch.arange(removable)
        local = torch.where(pos < first, 0, (pos - first) // d + (1 if first else 0))
        ids_l.append(ids[:removable])
        chunk_l.append(local + n_chunks)
        n_chunks += int(local[-1]) + 1
    if not ids_l:
        return torch.zeros(0, dtype=torch.long)
    ids, chunk = torch.cat(ids_l), torch.cat(chunk_l)
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
    return torch.sort(ids[taken[chunk]]).values


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
