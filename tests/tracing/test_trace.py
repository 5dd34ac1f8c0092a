"""Tracing: example inputs of every form, and errors that name the module and the fix."""



import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import otograph
from otograph.testing.topologies import cbr


def small():
    return nn.Sequential(cbr(3, 8), cbr(8, 6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()


def test_inputs_may_be_tensor_tuple_or_dict():
    class KW(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 2)

        def forward(self, x, scale=None):
            y = F.relu(self.a(x))
            return self.b(y if scale is None else y * scale)

    m = KW().eval()
    for inputs in (torch.randn(2, 4), (torch.randn(2, 4),), {"x": torch.randn(2, 4)}):
        space = otograph.search_space(m, inputs)
        assert space.group("a").prunable and space.group("a").num_units == 6


def test_untraceable_model_names_the_module_and_the_fix():
    class Branchy(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Sequential(nn.Linear(3, 3), Branchy())

        def forward(self, x):
            return self.inner(x)

    with pytest.raises(otograph.TraceError, match=r"(?s)inner\.1.*leaf"):
        otograph.trace(Outer(), torch.randn(1, 3))
    # declaring it a leaf makes it traceable; being unknown, it is opaque and pins its input
    space = otograph.search_space(Outer(), torch.randn(1, 3), leaf_modules=[Branchy])
    assert any("Branchy" in o for o in space.opaque)
    assert "Branchy" in space.group("inner.0").reason


def test_bad_inputs():
    with pytest.raises(otograph.OtographError, match="example_inputs"):
        otograph.trace(small(), 3.0)


def _shrink_window(size: list, window: list) -> list:
    """Like torchvision's video Swin: mutates its list argument (an immutable fx argument once traced)."""
    for i in range(2):
        if size[i] <= window[i]:
            window[i] = size[i]
    return window


torch.fx.wrap("_shrink_window")


class ListMutation(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        w = _shrink_window([x.shape[2], x.shape[3]], [7, 7])
        return self.b(F.avg_pool2d(F.relu(self.a(x)), w))


def test_auto_falls_back_to_export_when_the_fx_graph_does_not_run():
    """swin3d_t: fx traces, but its graph fails on the example inputs; 'auto' then exports."""
    m, x = ListMutation().eval(), torch.randn(1, 3, 6, 6)
    with pytest.raises(otograph.TraceError, match="does not run on the example inputs") as info:
        otograph.trace(m, x)
    assert "export" in info.value.hint
    t = otograph.trace(m, x, frontend="auto")
    assert t.frontend == "export"
    assert otograph.search_space(m, x, frontend="auto").group("a").prunable
