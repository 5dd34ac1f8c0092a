"""Grouped convolutions: units are the same position inside every conv group, the groups count stays.

Torchvision's RegNet (X and Y, with squeeze-excitation) and ResNeXt classes in small configs, exact
in float64 with every group narrowed; whole conv groups where a GroupNorm ties a group's channels.
"""


import pytest
import torch

import otograph
from otograph.testing import check_exact
from otograph.testing.topologies import GroupedConv, GroupedPositions

tv = pytest.importorskip("torchvision")


def test_units_are_positions_inside_every_group():
    model = GroupedPositions().eval()
    space = otograph.search_space(model, torch.randn(2, 3, 16, 16))
    g = space.group("g.0")  # Conv2d(16, 24, groups=4): 6 outputs per group
    assert g.prunable and g.num_units == 6
    rows = next(m for m in g.members if m.param == "g.0.weight" and m.axis == 0)
    assert rows.indices(1) == [1, 7, 13, 19]  # output 1 of each of the 4 groups
    inputs = space.group("c1.0")  # its 4 inputs per group: position i of every group, weight column i
    assert inputs.prunable and inputs.num_units == 4
    assert next(m for m in inputs.members if m.param == "c1.0.weight").indices(2) == [2, 6, 10, 14]
    assert next(m for m in inputs.members if m.param == "g.0.weight" and m.axis == 1).indices(2) == [2]
    compact = otograph.compress(model, space, {"g.0": [0, 3], "c1.0": [1]})
    conv = compact.get_submodule("g.0")
    assert (conv.groups, conv.in_channels, conv.out_channels) == (4, 12, 16)
    assert tuple(conv.weight.shape) == (16, 3, 3, 3)


def test_a_groupnorm_over_conv_groups_keeps_whole_groups():
    space = otograph.search_space(GroupedConv().eval(), torch.randn(2, 3, 16, 16))
    g = next(g for g in space.prunable_groups if any(m.param == "gn.weight" for m in g.members))
    assert g.num_units == 4  # the four conv groups, each with its norm group
    rows = next(m for m in g.members if m.param == "g.0.weight" and m.axis == 0)
    assert rows.indices(1) == list(range(6, 12))


def _regnet(se: bool):
    from torchvision.models.regnet import BlockParams, RegNet

    torch.manual_seed(0)
    params = BlockParams.from_init_params(depth=3, w_0=16, w_a=8.0, w_m=2.0, group_width=8,
                                          se_ratio=0.25 if se else None)
    return RegNet(params, num_classes=10, stem_width=16).eval()


def _resnext():
    from torchvision.models.resnet import Bottleneck, ResNet

    torch.manual_seed(0)
    return ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10, groups=4, width_per_group=8).eval()


@pytest.mark.parametrize("build", [lambda: _regnet(False), lambda: _regnet(True), _resnext],
                         ids=["regnet_x", "regnet_y", "resnext"])
def test_narrowed_groups_are_exact(build):
    model = build()
    x = torch.randn(2, 3, 32, 32)
    res = check_exact(model, x, torch.randn(2, 3, 32, 32), fraction=0.3)
    grouped = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
    narrowed = [g for g in res.space.prunable_groups if g.id in res.units
                and any(m.param.rsplit(".", 1)[0] in grouped and m.axis == 0 for m in g.members)]
    assert narrowed, "no grouped conv lost output positions"
    for g in narrowed:  # every unit holds one output of each conv group
        conv = next(m for m in g.members if m.param.rsplit(".", 1)[0] in grouped and m.axis == 0)
        groups = model.get_submodule(conv.param.rsplit(".", 1)[0]).groups
        assert len(conv.indices(0)) == groups
    v = res.verification
    assert res.ok and v.max_ref > 1e-3, v


def _removed_at_half(name: str) -> float:
    from otograph.testing.zoo import removed_share

    torch.manual_seed(0)
    model = tv.models.get_model(name, weights=None).eval()
    return removed_share(model, otograph.search_space(model, torch.randn(1, 3, 32, 32)))


@pytest.mark.parametrize("name,peer", [("regnet_x_400mf", 0.7299), ("regnet_y_400mf", 0.7226)])
def test_regnet_removes_at_least_what_torch_pruning_removes(name, peer):
    # peer: Torch-Pruning 1.6.1 MetaPruner, pruning_ratio=0.5, fc ignored (measured on this torchvision)
    assert _removed_at_half(name) >= peer - 5e-5
