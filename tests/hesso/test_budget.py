import doctest
from collections.abc import Sequence

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hesso.budget
from hesso.budget import Budget, select


def test_doctests():
    assert doctest.testmod(hesso.budget).failed == 0


def test_divisible_groups_keep_multiples():
    scores = torch.arange(10, dtype=torch.float64)
    offsets = torch.tensor([0, 10])
    chosen = select(scores, torch.ones(10, dtype=torch.bool), offsets, [4], torch.ones(10), 3.0)
    # 10 units, divisor 4: chunks of 2 (10 % 4) then 4; the target is reached, never undershot
    assert chosen.tolist() == [0, 1, 2, 3, 4, 5]
    chosen = select(scores, torch.ones(10, dtype=torch.bool), offsets, [4], torch.ones(10), 2.0)
    assert chosen.tolist() == [0, 1]
    chosen = select(scores, torch.ones(10, dtype=torch.bool), offsets, [4], torch.ones(10), 100.0)
    assert chosen.tolist() == list(range(6))  # 4 kept


def test_costs_and_alive():
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4])
    alive = torch.tensor([False, True, True, True])
    cost = torch.tensor([5.0, 1.0, 10.0, 1.0])
    assert select(scores, alive, torch.tensor([0, 4]), [1], cost, 2.0).tolist() == [1, 2]
    assert select(scores, alive, torch.tensor([0, 4]), [1], cost, 0.0).tolist() == []


@settings(deadline=None, max_examples=50)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=6), st.integers(1, 3), st.floats(0, 1), st.integers(0, 99))
def test_select_properties(sizes, div, frac, seed):
    g = torch.Generator().manual_seed(seed)
    offsets = torch.tensor([0, *torch.tensor(sizes).cumsum(0).tolist()])
    U = int(offsets[-1])
    scores = torch.rand(U, generator=g, dtype=torch.float64)
    cost = torch.rand(U, generator=g, dtype=torch.float64) + 0.1
    target = frac * float(cost.sum())
    chosen = select(scores, torch.ones(U, dtype=torch.bool), offsets, [div] * len(sizes), cost, target)
    at_minimum = []
    for gi, n in enumerate(sizes):
        lo, hi = int(offsets[gi]), int(offsets[gi + 1])
        mine = chosen[(chosen >= lo) & (chosen < hi)]
        kept = n - mine.numel()
        assert kept >= 1 and (mine.numel() == 0 or kept % div == 0)
        if mine.numel():  # chosen units are the group's lowest
            rest = torch.tensor([u for u in range(lo, hi) if u not in mine.tolist()])
            assert scores[mine].max() <= scores[rest].min()
        at_minimum.append(kept == (n if n <= div else div))
    assert float(cost[chosen].sum()) >= target or all(at_minimum)


def test_budget_periods():
    b = Budget("units", 0.5, torch.ones(11), 11, 3)
    assert [b.period_target(p, 0) for p in range(3)] == [1.0, 2.0, 5.0]
    f = Budget("flops", 0.5, torch.ones(4), 1000, 2)
    assert f.period_target(0, 0) == 250 and f.period_target(1, 300) == 200 and f.target == 500


def select_loop(scores: torch.Tensor, alive: torch.Tensor, offsets: torch.Tensor, divisors: Sequence[int],
           cost: torch.Tensor, target: float) -> torch.Tensor:
    """The former selection, one group at a time: the reference the vectorised one must equal."""
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


@settings(deadline=None, max_examples=120)
@given(st.lists(st.tuples(st.integers(1, 12), st.integers(1, 4)), min_size=1, max_size=8), st.floats(0, 1.2),
       st.integers(0, 999), st.booleans(), st.booleans())
def test_vectorised_select_equals_the_loop_over_groups(groups, frac, seed, ties, ones):
    g = torch.Generator().manual_seed(seed)
    sizes, divisors = [n for n, _ in groups], [1 if ones else d for _, d in groups]
    offsets = torch.tensor([0, *torch.tensor(sizes).cumsum(0).tolist()])
    U = int(offsets[-1])
    scores = torch.rand(U, generator=g, dtype=torch.float64)
    if ties:  # many equal scores: the order must fall back to unit ids, as before
        scores = (scores * 3).floor()
    alive = torch.rand(U, generator=g) < 0.8
    cost = torch.rand(U, generator=g, dtype=torch.float64) + 0.1
    target = frac * float(cost.sum())
    assert select(scores, alive, offsets, divisors, cost, target).tolist() == \
        select_loop(scores, alive, offsets, divisors, cost, target).tolist()
