"""compress: from exact zeros in the model, and from explicit units."""


import copy

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
