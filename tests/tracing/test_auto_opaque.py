"""frontend="auto": where fx keeps a function it cannot see into (``torch.fx.wrap``, as torchvision's
Swin does with ``shifted_window_attention``), torch.export is tried too and its space taken when
more is prunable there; fx's own leaves, when asked for, stay."""

import torch
import torch.nn as nn

import otograph
from otograph.testing.exact import check_exact


def scaled_mix(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.conv2d(x, w).relu() * 2.0


torch.fx.wrap("scaled_mix")


class Wrapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.w = nn.Parameter(torch.randn(8, 8, 1, 1))
        self.b = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.b(scaled_mix(self.a(x), self.w))


def test_auto_takes_export_where_fx_keeps_an_opaque_function():
    torch.manual_seed(0)
    model, x = Wrapped().eval(), torch.randn(1, 3, 8, 8)
    fx_space = otograph.search_space(model, x, frontend="fx")
    assert fx_space.opaque and not fx_space.prunable_groups
    space = otograph.search_space(model, x, frontend="auto")
    assert space.traced.frontend == "export" and not space.opaque
    assert {g.num_units for g in space.prunable_groups} == {8}  # conv a's and w's outputs
    res = check_exact(model, x, torch.randn(2, 3, 8, 8), frontend="auto", fraction=0.5)
    assert res.verification.exact and res.units and res.space.traced.frontend == "export"


def test_auto_keeps_fx_when_its_leaves_are_asked_for():
    model, x = Wrapped().eval(), torch.randn(1, 3, 8, 8)
    space = otograph.search_space(model, x, frontend="auto", leaf_modules=[nn.Conv2d])
    assert space.traced.frontend == "fx"
