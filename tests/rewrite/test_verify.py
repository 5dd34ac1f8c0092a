"""``otograph.verify``: the comparison, and ``dtype=`` for the float64 exactness check."""

from __future__ import annotations

import torch
from torch import nn

import otograph


class Shifted(nn.Module):
    """``(x + 1e4) - 1e4``: the identity in exact arithmetic, ~1e-3 off in float32, ~1e-12 in float64."""

    def forward(self, x):
        return (x + 1e4) - 1e4


SEEN: list[tuple[torch.dtype, torch.dtype]] = []  # module level: deep copies share it


class Gather(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(4))

    def forward(self, x, idx):
        SEEN.append((x.dtype, self.w.dtype))
        return (x * self.w)[idx]


def test_float64_removes_float32_rounding():
    x = torch.rand(64, 8)
    v32 = otograph.verify(Shifted(), nn.Identity(), x)
    v64 = otograph.verify(Shifted(), nn.Identity(), x, dtype=torch.float64)
    assert v32.max_abs > 1e-5 and not v32.exact
    assert v64.max_abs < 1e-10 and v64.exact
    assert x.dtype == torch.float32


def test_dtype_converts_copies_and_floating_inputs_only():
    ref, cmp_ = Gather(), Gather()
    x, idx = torch.randn(5, 4), torch.tensor([0, 2])  # the index must stay an integer tensor
    SEEN.clear()
    v = otograph.verify(ref, cmp_, (x, idx), dtype=torch.float64)
    assert v.max_abs == 0.0 and v.params_before == v.params_after == 4
    assert SEEN and set(SEEN) == {(torch.float64, torch.float64)}
    assert ref.w.dtype == cmp_.w.dtype == torch.float32 and x.dtype == torch.float32  # the originals are untouched
    SEEN.clear()
    otograph.verify(ref, cmp_, (x, idx))
    assert set(SEEN) == {(torch.float32, torch.float32)}
