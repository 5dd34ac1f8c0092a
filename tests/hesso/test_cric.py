"""CRIC rescues a unit that one-batch saliency would remove although the model depends on it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hesso import CRIC, HESSO, HESSOCRIC
from hesso.cric import CricRun
from otograph.analysis.space import SearchSpace
from otograph.testing.spaces import channel_group


class Trap(nn.Module):
    """Unit 0: tiny input weights, huge output weight, carries the whole signal. Units 1-5: idle."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 6, bias=False)
        self.fc2 = nn.Linear(6, 1, bias=False)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.randn(6, 4, generator=g))
            self.fc1.weight[0] = torch.tensor([0.0625, 0.0, 0.0, 0.0])  # powers of two: exact
            self.fc2.weight.zero_()
            self.fc2.weight[0, 0] = 16.0

    def forward(self, x):
        return self.fc2(self.fc1(x))


def trap_space():
    g = channel_group("hidden", 6, [("fc1.weight", 0)], [("fc2.weight", 1)], params=5, flops=10)
    return SearchSpace([g], 30, 60)


def run(cric):
    torch.manual_seed(0)
    model = Trap()
    opt = HESSO(model, trap_space(), variant="sgd", lr=2e-3, target_group_sparsity=0.2, pruning_steps=30,
                cric=cric)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(30):
        x = torch.randn(32, 4, generator=g)
        y = x[:, :1]  # exactly what unit 0 computes: 16 * 0.0625 * x0
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    x = torch.randn(256, 4, generator=g)
    with torch.no_grad():
        final = nn.functional.mse_loss(model(x), x[:, :1]).item()
    return opt, losses, final


def test_plain_hesso_falls_into_the_trap_and_cric_does_not():
    plain, losses, final_plain = run(None)
    assert losses[0] == 0.0  # the model starts at the optimum: every gradient is zero
    assert plain.pruned_units == {"hidden": [0]}
    assert final_plain > 0.5  # collapsed: the signal is gone

    fixed, _, final_cric = run(CRIC(max_cycles=3, cycle_steps=5))
    assert fixed.pruned_units["hidden"] != [0] and len(fixed.pruned_units["hidden"]) == 1
    assert final_cric < 0.05 * final_plain


def test_hessocric_defaults_and_validation():
    model = Trap()
    opt = HESSOCRIC(model, trap_space(), lr=0.1, target_group_sparsity=0.2, pruning_steps=30)
    assert opt.cric == CRIC() and opt._cric_steps == 5  # 30 // (2 * 3)
    assert "CRIC: up to 3 cycles of 5 steps" in opt.summary()
    with pytest.raises(ValueError, match="no step"):
        HESSO(model, trap_space(), lr=0.1, target_group_sparsity=0.2, pruning_steps=6,
              cric=CRIC(max_cycles=3, cycle_steps=2))
    with pytest.raises(ValueError):
        CRIC(max_cycles=0)


def test_cycle_bookkeeping():
    run_ = CricRun(torch.tensor([True, False, False]), snapshot=[])
    run_.record(torch.tensor([1.0, 0.5, 2.0]))
    assert not run_.end_cycle(torch.tensor([1]), max_cycles=3)  # unit 1 is new: go on
    assert run_.candidates.tolist() == [True, True, False] and run_.cycle == 1
    assert run_.cycle_sum.abs().sum() == 0 and run_.total.tolist() == [1.0, 0.5, 2.0]
    assert run_.end_cycle(torch.tensor([0]), max_cycles=3)  # nothing new: done
    run2 = CricRun.from_state(run_.state())
    assert run2.candidates.tolist() == run_.candidates.tolist() and run2.cycle == 2
