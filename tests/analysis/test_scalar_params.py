"""A scalar parameter shared by every channel belongs to no unit, so it is never zeroed: timm's
StarReLU (``s * relu(x) ** 2 + b``, MetaFormer/PoolFormerV2) gives ``b`` at a removed channel, and
the next layer's columns there still see it. Such hidden units stay (before 410891f they were
removable: exact only while ``b`` kept its initial 0)."""

import pytest
import torch
import torch.nn as nn

import otograph
from otograph.testing.exact import check_exact


class StarMLP(nn.Module):
    def __init__(self, bias: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 4)
        self.scale = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.full((1,), bias))

    def forward(self, x):
        return self.fc2(self.scale * torch.relu(self.fc1(x)) ** 2 + self.bias)


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_a_scalar_bias_after_the_activation_keeps_the_hidden_units(frontend):
    torch.manual_seed(0)
    model = StarMLP(bias=0.5).eval()
    x = torch.randn(3, 4)
    space = otograph.search_space(model, x, frontend=frontend)
    hidden = next(g for g in space.groups if any(m.param == "fc1.weight" and m.axis == 0 for m in g.members))
    assert not hidden.prunable and "non-zero slice reaches the input" in hidden.reason
    res = check_exact(model, x, torch.randn(5, 4), frontend=frontend)
    assert res.verification.exact and hidden.id not in res.units
