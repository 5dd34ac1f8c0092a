"""Uniform widths: every group of the same kind ends with the same number of units removed.

A model whose layers keep different numbers of heads or neurons cannot be described by a standard
Hugging Face config (one ``num_attention_heads``, one ``intermediate_size``). With ``uniform`` HESSO
still ranks units globally (:func:`hesso.budget.select`, or :func:`~hesso.budget.select_exact` with a
cost model), then :func:`equalize` evens the choice out within each kind of group: the groups of a
kind all end at the mean of the counts the global ranking gave them (rounded, never below what a
group has already lost, keeping a multiple of its divisor and at least one chunk), each losing its
lowest-scored units. Rounding down can leave the budget short: then whole even steps (one more unit
from every group of a kind, the least salient kind first) are added until the target holds again,
and HESSO warns when no step is left. The kind of a group is :func:`default_kind` (its id with
numbers replaced by ``#``, and its unit count: every layer's attention, every layer's MLP) or any
function of the group.

Example:
    >>> import torch
    >>> scores = torch.tensor([0.1, 0.2, 0.9, 0.8,   0.5, 0.6, 0.7, 0.05])
    >>> alive = torch.ones(8, dtype=torch.bool)
    >>> offsets = torch.tensor([0, 4, 8])                       # two groups of four units, one kind
    >>> chosen = torch.tensor([0, 1, 7])                         # the global choice: 2 + 1 units
    >>> equalize(chosen, scores, alive, offsets, [1, 1], torch.tensor([0, 0])).tolist()
    [0, 1, 4, 7]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

__all__ = ["default_kind", "kinds_of", "equalize", "share_units", "uniform_units"]


def default_kind(group: Any) -> Hashable:
    """``("layers.#.mlp.gate_proj", 48)`` for group ``layers.3.mlp.gate_proj`` of 48 units."""
    return re.sub(r"\d+", "#", str(group.id)), int(group.num_units)


def kinds_of(groups: Sequence[Any], kind: Callable[[Any], Hashable] = default_kind) -> torch.Tensor:
    """The kind of each group as a small integer (``G``), in order of first appearance."""
    index: dict[Hashable, int] = {}
    return torch.tensor([index.setdefault(kind(g), len(index)) for g in groups], dtype=torch.long)


def equalize(chosen: torch.Tensor, scores: torch.Tensor, alive: torch.Tensor, offsets: torch.Tensor,
             divisors: Sequence[int], kinds: torch.Tensor,
             reached: Callable[[torch.Tensor], bool] | None = None) -> torch.Tensor:
    """``chosen`` (global ids of alive units) changed so that, counting the units already gone
    (``~alive``), every group of a kind has lost the same number of units; sorted ids.

    ``reached(mask)`` (a mask over all units: those gone and those chosen) says whether the budget
    target holds. While it does not, the kind whose next even step (one more unit, or chunk, from each
    of its groups) adds the least salient units (by mean score) loses that step, until it holds or no
    kind can lose more (then the caller reports the shortfall).
    """
    offsets = torch.as_tensor(offsets, dtype=torch.long).cpu()
    scores, alive, chosen = scores.cpu().double(), alive.cpu(), chosen.cpu()
    G = offsets.numel() - 1
    if G == 0:
        return chosen
    n = offsets[1:] - offsets[:-1]
    group_of = torch.repeat_interleave(torch.arange(G), n)
    d = torch.as_tensor(list(divisors), dtype=torch.long)
    gone = torch.bincount(group_of[~alive], minlength=G)
    total = gone + torch.bincount(group_of[chosen], minlength=G)
    K = int(kinds.max()) + 1
    members = torch.bincount(kinds, minlength=K).double()
    mean = torch.zeros(K, dtype=torch.float64).index_add_(0, kinds, total.double()) / members
    floor = torch.zeros(K, dtype=torch.long).scatter_reduce(0, kinds, gone, "amax")
    target = torch.maximum(torch.floor(mean + 0.5).long(), floor)  # units removed per group, per kind
    most = torch.zeros(K, dtype=torch.long).scatter_reduce(0, kinds, n, "amax")
    ids = alive.nonzero().flatten()
    ids = ids[torch.sort(scores[ids], stable=True).indices]   # by (score, id)
    ids = ids[torch.sort(group_of[ids], stable=True).indices]  # then by group
    grp = group_of[ids]
    per = torch.bincount(grp, minlength=G)
    pos = torch.arange(ids.numel()) - (torch.cumsum(per, 0) - per)[grp]

    def mask_for(target: torch.Tensor) -> torch.Tensor:
        t = target[kinds]
        kept = torch.clamp(torch.div(n - t, d, rounding_mode="floor") * d, min=0)  # a multiple of d …
        kept = torch.where(kept < d, torch.minimum(d, n), kept)                    # … and at least one chunk
        need = torch.clamp(n - kept - gone, min=0)
        mask = ~alive
        mask[ids[pos < need[grp]]] = True
        return mask

    mask = mask_for(target)
    while reached is not None and not reached(mask):
        best = None
        for k in range(K):
            step = target.clone()
            while int(step[k]) < int(most[k]):
                step[k] += 1
                bigger = mask_for(step)
                if not torch.equal(bigger, mask):
                    mean_score = float(scores[bigger & ~mask].mean())
                    if best is None or mean_score < best[0]:
                        best = (mean_score, step, bigger)
                    break
        if best is None:
            break
        _, target, mask = best
    return (mask & alive).nonzero().flatten()


def share_units(groups: Sequence[Any], share: float, divisor: int = 1) -> dict[str, list[int]]:
    """Every prunable group drops ``share`` of its units and keeps a multiple of ``divisor`` of them
    (at least ``divisor``; a group of fewer units stays whole); its last units go. The uniformly
    slimmed network, as a ``{group id: [unit, …]}`` choice (which units go does not matter for shapes).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> groups = [NS(id="a", num_units=64, prunable=True), NS(id="b", num_units=6, prunable=True)]
        >>> {k: len(v) for k, v in share_units(groups, 0.5, divisor=8).items()}
        {'a': 32}
    """
    units = {}
    for g in groups:
        n = g.num_units
        if not g.prunable or n < max(2, divisor):
            continue
        keep = min(n, max(divisor, round(n * (1 - share) / divisor) * divisor))
        if keep < n:
            units[g.id] = list(range(keep, n))
    return units


def uniform_units(space: Any, target: float, kind: str = "flops", divisor: int = 1,
                  steps: int = 30) -> dict[str, list[int]]:
    """:func:`share_units` with the smallest share whose removal cuts at least ``target`` of the
    space's ``kind`` (``"flops"`` or ``"params"``, the exact cost model of the compact model: a weight
    between two shrinking groups costs kept rows × kept columns), found by bisection. A baseline for
    HESSO's own choice, and the shapes for latency measurements. Raises ``ValueError`` when removing
    every unit it evenly can still misses the target.
    """
    from hesso.budget import ExactReduction

    if kind not in ("flops", "params"):
        raise ValueError(f"uniform_units: kind must be 'flops' or 'params', not {kind!r}")
    groups = [g for g in space.groups if g.prunable]
    offsets = torch.tensor([0, *torch.cumsum(torch.tensor([g.num_units for g in groups]), 0).tolist()])
    reduction = ExactReduction(space.costs, kind, [g.id for g in groups], offsets)
    index = {g.id: i for i, g in enumerate(groups)}

    def cut(units: dict[str, list[int]]) -> float:
        mask = torch.zeros(int(offsets[-1]), dtype=torch.bool)
        for gid, us in units.items():
            mask[int(offsets[index[gid]]) + torch.as_tensor(us)] = True
        return reduction(mask) / max(1.0, reduction.total)

    lo, hi = 0.0, 1.0
    if cut(share_units(groups, hi, divisor)) < target:
        raise ValueError(f"uniform widths cannot cut {target:.0%} of the {kind}: "
                         f"{cut(share_units(groups, hi, divisor)):.1%} at most")
    for _ in range(steps):
        mid = (lo + hi) / 2
        if cut(share_units(groups, mid, divisor)) >= target:
            hi = mid
        else:
            lo = mid
    return share_units(groups, hi, divisor)
