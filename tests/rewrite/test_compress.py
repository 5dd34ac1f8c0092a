"""compress: from exact zeros in the model, and from explicit units."""


import copy

import pytest
import torch

import otograph
from otograph.testing.topologies import SqueezeExcite


def test_zero_then_compress_from_zeros_is_exact():
    m = SqueezeExcite().eval().double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.double)
    space = otograph.search_space(m, x)
    units = {g.id: [0, 2] for g in space.prunable_groups}
    space.zero_(m, units)
    assert space.zero_units(m) == units
    before = copy.deepcopy(m.state_dict())
    compact = otograph.compress(m, space)  # units=None: read the zeros
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items()), "original was modified"
    v = otograph.verify(m, compact, x)
    assert v.max_abs <= 1e-12 and v.params_after < v.params_before and v.flops_after < v.flops_before
    assert isinstance(compact, torch.fx.GraphModule)
    assert compact.get_submodule("c.0").out_channels == 14 and compact.fc1.in_channels == 14



@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_a_depthwise_net_shrinks_exactly_and_keeps_its_memory_format(fmt, inplace):
    """MobileNetV3's depthwise convs lose whole conv groups, in a compact graph and in place (where
    ``groups`` follows the sliced weight); a channels-last model stays channels-last (CPU CNNs run
    fastest so; slicing with ``index_select`` alone returns contiguous weights)."""
    tv = pytest.importorskip("torchvision")
    model = tv.models.mobilenet_v3_small(num_classes=10).double().eval().to(memory_format=fmt)
    x = torch.randn(2, 3, 32, 32, dtype=torch.double).contiguous(memory_format=fmt)
    space = otograph.search_space(model, x)
    units = {g.id: [0, 1] for g in space.prunable_groups}
    ref = copy.deepcopy(model)
    space.zero_(ref, units)
    out = otograph.compress(copy.deepcopy(model) if inplace else model, space, units, inplace=inplace)
    assert otograph.verify(ref, out, x).max_abs <= 1e-12
    convs = {n: m for n, m in out.named_modules() if isinstance(m, torch.nn.Conv2d)}
    depthwise = [m for m in convs.values() if m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels == m.weight.shape[0] for m in depthwise)
    assert sum(m.weight.numel() for m in convs.values()) < sum(
        m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert [n for n, m in convs.items() if not m.weight.is_contiguous(memory_format=fmt)] == []


def test_take_keeps_the_memory_format_of_4d_and_5d_tensors_and_makes_others_contiguous():
    import numpy as np

    from otograph.rewrite.plan import take

    keep = np.array([0, 2, 3])
    for fmt, shape in ((torch.channels_last, (4, 5, 3, 3)), (torch.channels_last_3d, (4, 5, 2, 3, 3))):
        t = torch.randn(shape).contiguous(memory_format=fmt)
        out = take(t, [(0, keep), (1, keep)])
        assert out.is_contiguous(memory_format=fmt) and not out.is_contiguous()
        assert torch.equal(out, t[keep][:, keep])
    t = torch.randn(6, 4).t()  # a transposed view: no format to keep
    out = take(t, [(1, keep)])
    assert out.is_contiguous() and torch.equal(out, t[:, keep]) and out.data_ptr() != t.data_ptr()
