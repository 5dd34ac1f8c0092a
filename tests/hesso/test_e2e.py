"""Train with HESSO on an otograph search space, compress, and check exactness in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import otograph
from hesso import HESSO
from otograph.cli.models import SmallResNet
from otograph.testing.spaces import CNN, MLP, cnn_space


def run(model, example, make_batch, steps=12, **kw):
    model = model.double()
    space = otograph.search_space(model, example)
    opt = HESSO(model, space, target_group_sparsity=0.5, start_pruning_step=2, pruning_steps=6,
                pruning_periods=2, **kw)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = make_batch(g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, space, opt


def image_batch(g):
    return torch.randn(8, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 4, (8,), generator=g)


@pytest.mark.parametrize("variant", ["sgd", "adamw"])
@pytest.mark.parametrize("make", [lambda: SmallResNet(num_classes=4), CNN])
def test_trained_model_compresses_exactly(make, variant):
    torch.manual_seed(0)
    kw = dict(lr=0.05, momentum=0.9) if variant == "sgd" else dict(lr=1e-2, weight_decay=0.1)
    model, space, opt = run(make(), torch.zeros(2, 1, 8, 8, dtype=torch.float64), image_batch, variant=variant,
                            **kw)
    pruned = opt.pruned_units
    assert sum(map(len, pruned.values())) == opt.layout.num_units // 2
    assert space.zero_units(model) == pruned
    compact = otograph.compress(model, space)
    x = torch.randn(16, 1, 8, 8, dtype=torch.float64)
    v = otograph.verify(model, compact, x)
    assert v.exact and v.max_abs <= 1e-9, v
    assert v.params_after < v.params_before and v.flops_after < v.flops_before


def test_mlp_space_from_otograph():
    torch.manual_seed(1)

    def batch(g):
        return torch.randn(8, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (8,), generator=g)

    model, space, opt = run(MLP(), torch.zeros(2, 6, dtype=torch.float64), batch, variant="sgd", lr=0.1)
    compact = otograph.compress(model, space)
    v = otograph.verify(model, compact, torch.randn(5, 6, dtype=torch.float64))
    assert v.exact, v


def test_hand_built_cnn_space_agrees_with_otograph():
    model = CNN()
    auto = otograph.search_space(model, torch.zeros(2, 1, 8, 8))
    hand = cnn_space(model)
    for g in hand.groups:
        a = auto.group(g.id)
        assert a.prunable and a.num_units == g.num_units
        assert {(m.param, m.axis, m.role) for m in a.members} == {(m.param, m.axis, m.role) for m in g.members}
