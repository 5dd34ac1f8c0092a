import doctest

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
