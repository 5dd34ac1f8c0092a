"""Property test: random small architectures from the supported ops keep the exactness invariant."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otograph.testing import check_exact

ACTS = [F.relu, F.gelu, F.silu, torch.tanh, F.hardswish, torch.sigmoid]


class RandomNet(nn.Module):
    """A chain of blocks; each block is conv/bn/act, a residual, a concat or a squeeze-excite."""

    def __init__(self, plan, cin=3):
        super().__init__()
        self.plan = plan
        self.mods = nn.ModuleList()
        c = cin
        self.kinds = []
        for kind, width, act in plan:
            if kind == "conv":
                self.mods.append(nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width)))
                c = width
            elif kind == "res":
                self.mods.append(nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c)))
            elif kind == "cat":
                self.mods.append(nn.Conv2d(c, width, 1))
                c = c + width
            elif kind == "dw":
                self.mods.append(nn.Conv2d(c, c, 3, padding=1, groups=c))
            elif kind == "se":
                self.mods.append(nn.Sequential(nn.Conv2d(c, max(1, c // 2), 1), nn.ReLU(),
                                               nn.Conv2d(max(1, c // 2), c, 1)))
            self.kinds.append((kind, act))
        self.head = nn.Linear(c, 3)

    def forward(self, x):
        for m, (kind, act) in zip(self.mods, self.kinds, strict=False):
            f = ACTS[act]
            if kind in ("conv", "dw"):
                x = f(m(x))
            elif kind == "res":
                x = x + f(m(x))
            elif kind == "cat":
                x = torch.cat([x, f(m(x))], 1)
            elif kind == "se":
                x = x * torch.sigmoid(m(F.adaptive_avg_pool2d(x, 1)))
        return self.head(x.mean((2, 3)))


block = st.tuples(st.sampled_from(["conv", "res", "cat", "dw", "se"]), st.integers(2, 6),
                  st.integers(0, len(ACTS) - 1))
plans = st.lists(block, min_size=1, max_size=6).filter(lambda p: p[0][0] == "conv")


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans, seed=st.integers(0, 2**16))
def test_random_architectures_are_exact(plan, seed):
    torch.manual_seed(seed)
    model = RandomNet(plan).eval()
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    res = check_exact(model, torch.randn(1, 3, 6, 6), torch.randn(3, 3, 6, 6), fraction=0.3, seed=seed)
    v = res.verification
    assert v.exact, (plan, v)
    assert v.params_after == res.expected_params
