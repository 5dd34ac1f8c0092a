"""A product by a parameter shared across another channel axis (one ``head_dim`` weight for every
head): the axis it covers stays whole and the units are slabs along the other axis."""

import pytest
import torch
import torch.nn as nn

import otograph
from otograph.testing.exact import check_exact


class PerHeadNorm(nn.Module):
    """Attention whose queries and keys are RMS-normalised per head with one shared weight."""

    def __init__(self, dim: int = 12, heads: int = 3):
        super().__init__()
        self.h, self.d = heads, dim // heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.qw, self.kw = nn.Parameter(torch.rand(self.d) + 0.5), nn.Parameter(torch.rand(self.d) + 0.5)

    def _rms(self, t, w):
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    def forward(self, x):
        B, T, _ = x.shape
        q, k, v = (f(x).view(B, T, self.h, self.d).transpose(1, 2) for f in (self.q, self.k, self.v))
        y = torch.nn.functional.scaled_dot_product_attention(self._rms(q, self.qw), self._rms(k, self.kw), v)
        return self.o(y.transpose(1, 2).reshape(B, T, self.h * self.d))


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_heads_are_units_and_the_shared_weight_stays_whole(frontend):
    torch.manual_seed(0)
    model = PerHeadNorm()
    res = check_exact(model, torch.randn(2, 5, 12), torch.randn(2, 5, 12), frontend=frontend, fraction=0.34)
    assert res.ok, res.verification
    heads = res.space.group("q")
    assert heads.prunable and heads.num_units == 3 and res.units.get("q")
    assert {m.param for m in heads.members} == {f"{n}.{p}" for n in "qkvo" for p in ("weight", "bias")} - {"o.bias"}
    assert not any(m.param in ("qw", "kw") for g in res.space.groups for m in g.members)


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_a_per_channel_scale_is_still_a_member(frontend):
    """Varying along its own axis only (LayerScale, an affine weight), the parameter shrinks with its channels."""
    torch.manual_seed(0)

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.gamma = nn.Linear(4, 6), nn.Linear(6, 3), nn.Parameter(torch.rand(6) + 0.5)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)) * self.gamma)

    space = otograph.search_space(Scaled(), torch.randn(2, 4), frontend=frontend)
    assert ("gamma", 0) in {(m.param, m.axis) for m in space.group("a").members}
