"""A strided slice over a channel axis (``y[:, ::2]``, ``aten.slice`` with step 2) picks positions the
compact model cannot name with a stride: the axis stays whole, with the reason; along other axes
a stride is fine."""

import pytest
import torch
import torch.nn as nn

import otograph
from otograph.testing.exact import check_exact


class Strided(nn.Module):
    def __init__(self, axis: int):
        super().__init__()
        self.axis, self.conv, self.head = axis, nn.Conv2d(3, 6, 1), nn.Linear(3 if axis == 1 else 6, 2)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        y = y[:, ::2] if self.axis == 1 else y[:, :, ::2]
        return self.head(y.mean((2, 3)))


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_a_stride_over_channels_keeps_them_whole(frontend):
    model, x = Strided(1).double(), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    group = otograph.search_space(model, x, frontend=frontend).group("conv")
    assert not group.prunable and "stride" in group.reason


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_a_stride_over_space_leaves_channels_prunable(frontend):
    model, x = Strided(2).double(), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert otograph.search_space(model, x, frontend=frontend).group("conv").prunable
    result = check_exact(Strided(2), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), frontend=frontend)
    assert result.ok and result.units.get("conv")
