"""A size read (``x.numel()``, ``x.shape[1]``, ``x.size(1)``) of a shrinking axis: as a size argument
it follows the compact model, as a value (a scale) it must keep the original number."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import otograph
from otograph.testing.exact import check_exact


class Scaled(nn.Module):
    def __init__(self, how: str):
        super().__init__()
        self.how, self.conv, self.head = how, nn.Conv2d(3, 6, 1), nn.Linear(6, 2)

    def forward(self, x):
        y = F.relu(self.conv(x))
        if self.how == "numel":
            y = y * (1.0 / y.numel())
        elif self.how == "shape":
            y = y * y.shape[1] ** -0.5
        elif self.how == "size":
            y = y / y.size(1)
        else:  # sizes as sizes only
            b, c = y.shape[0], y.size(1)
            return self.head(y.reshape(b, c, -1).mean(-1).view(b, c))
        return self.head(y.mean((2, 3)))


@pytest.mark.parametrize("how", ["numel", "shape", "size"])
def test_a_size_used_as_a_value_pins_the_axis_it_reads(how):
    model, x = Scaled(how).double(), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    group = otograph.search_space(model, x).group("conv")
    assert not group.prunable and "used as a value" in group.reason
    assert check_exact(Scaled(how), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)).ok


def test_sizes_given_to_reshape_and_view_follow_the_compact_model():
    model, x = Scaled("reshape").double(), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert otograph.search_space(model, x).group("conv").prunable
    result = check_exact(Scaled("reshape"), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4))
    assert result.ok and result.units.get("conv")


class Constructed(nn.Module):
    """A tensor built with a channel axis's size (``x.new_ones(x.shape)`` after a flatten, a
    ``x.new_zeros(b, c)`` added): it has no channel structure, so that axis stays whole; one built
    with the batch size only leaves the channels prunable."""

    def __init__(self, how: str):
        super().__init__()
        self.how, self.lin, self.head = how, nn.Linear(2, 3, bias=False), nn.Linear(6, 2)

    def forward(self, x):
        y = torch.flatten(self.lin(x), 1)
        if self.how == "new_ones":
            y = y * y.new_ones(y.shape)
        elif self.how == "zeros":
            y = y + y.new_zeros(y.shape[0], y.size(1))
        else:
            y = y * y.new_ones(y.shape[0], 1)
        return self.head(y)


@pytest.mark.parametrize("frontend", ["fx", "export"])
@pytest.mark.parametrize("how", ["new_ones", "zeros", "batch"])
def test_a_tensor_built_with_a_channel_size(how, frontend):
    model, x = Constructed(how), torch.randn(4, 2, 2)
    group = otograph.search_space(model.double(), x.double(), frontend=frontend).group("lin")
    if how == "batch":
        result = check_exact(Constructed(how), x, torch.randn(4, 2, 2), frontend=frontend)
        assert result.ok and result.units.get("lin")
    else:
        assert not group.prunable and "used as a value" in group.reason, group.reason
