"""The search space as data: readable reprs, per-unit costs, zeroing, grad-free members."""



import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import otograph
from otograph.testing.topologies import cbr


def small():
    return nn.Sequential(cbr(3, 8), cbr(8, 6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()


def test_reprs_are_readable():
    space = otograph.search_space(small(), torch.randn(1, 3, 8, 8))
    assert repr(space).startswith("SearchSpace(3 groups, 2 prunable")
    g = space.group("0.0")
    assert repr(g) == "Group('0.0', 8 units, 7 members, prunable)"
    assert "Member(0.0.weight, axis=0, 8/8 positions, producer)" in repr(g.members)
    assert "reaches the model output" in repr(space.group("4"))
    from otograph.report.tables import space_table

    assert "0.0" in space_table(space) and "prunable" in space_table(space)


def test_group_costs():
    space = otograph.search_space(small(), torch.randn(1, 3, 8, 8))
    g = space.group("0.0")  # conv 3→8 (3·3·3 + 1 each), BN (2), next conv's input (6·3·3)
    assert g.unit_params.tolist() == [27 + 1 + 2 + 54] * 8
    assert float(g.unit_flops[0]) == pytest.approx(2 * 27 * 64 + 2 * 54 * 64)


def test_units_are_checked_the_same_way_by_zero_and_compress():
    """One validator: masks and non-integers are type errors; unknown or unprunable groups,
    indices out of range and every unit of a group are refused, by zero_ and compress alike."""
    m = small()
    space = otograph.search_space(m, torch.randn(1, 3, 8, 8))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    bad = [({"0.0": [True, False, True]}, TypeError, "mask"),
           ({"0.0": torch.tensor([True, False])}, TypeError, "mask"),
           ({"0.0": [1.5]}, TypeError, "integer"),
           ({"0.0": ["1"]}, TypeError, "integer"),
           ({"0.0": 3}, TypeError, "list"),
           ([("0.0", [1])], TypeError, "mapping"),
           ({"4": [0]}, otograph.OtographError, "not prunable"),
           ({"nope": [0]}, otograph.OtographError, "no group"),
           ({"0.0": [-1]}, otograph.OtographError, "units 0…7"),
           ({"0.0": [8]}, otograph.OtographError, "units 0…7"),
           ({"0.0": list(range(8))}, otograph.OtographError, "keep at least one")]
    for units, err, words in bad:
        with pytest.raises(err, match=words):
            space.zero_(m, units)
        with pytest.raises(err, match=words):
            otograph.compress(m, space, units)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())  # nothing was zeroed
    assert space.check_units({"0.0": [3, torch.tensor(1).item(), 3]}) == {"0.0": [1, 3]}


def test_grad_free_members_really_get_zero_gradients():
    """Members flagged grad_free (conv rows feeding only an affine BN) get exactly zero gradients
    once their unit is zero, in training mode; others are not flagged."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.b = nn.Conv2d(8, 8, 3, padding=1)  # its output feeds the BN and a skip: not grad free
            self.bn2 = nn.BatchNorm2d(8)
            self.head = nn.Conv2d(8, 2, 1)

        def forward(self, x):
            y = F.relu(self.bn(self.a(x)))
            z = self.b(y)
            return self.head(F.relu(self.bn2(z)) + z).mean((2, 3))

    m = Net()
    x = torch.randn(4, 3, 8, 8)
    space = otograph.search_space(m, x)
    flags = {(mm.param, mm.axis): mm.grad_free for g in space.groups for mm in g.members}
    assert flags[("a.weight", 0)] and flags[("a.bias", 0)]
    assert not flags[("b.weight", 0)] and not flags[("bn.weight", 0)] and not flags[("b.weight", 1)]
    space.zero_(m, {"a": [1, 4]})
    m.train()
    m(x).pow(2).sum().backward()
    assert m.a.weight.grad[[1, 4]].abs().max() == 0 and m.a.bias.grad[[1, 4]].abs().max() == 0
    assert m.a.weight.grad.abs().max() > 0
