"""The public API contract: names, reprs, zeroing, compress from zeros, registry, errors."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import otograph
from otograph.analysis.registry import BUILTIN, Registry, Rule
from tests.tricky_models import SqueezeExcite, cbr


def small():
    return nn.Sequential(cbr(3, 8), cbr(8, 6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()


def test_trace_records_shapes_and_networkx():
    t = otograph.trace(small(), torch.randn(2, 3, 8, 8))
    from otograph.graph import to_networkx

    g = to_networkx(t)
    assert g.number_of_nodes() == len(t.gm.graph.nodes)
    conv = g.nodes["_0_0"]
    assert otograph.search_space(small(), torch.randn(2, 3, 8, 8)).graph.nodes["_0_0"]["kind"] == "conv"
    assert conv["shape"] == (2, 8, 8, 8) and conv["params"] == ["0.0.weight", "0.0.bias"]
    import networkx as nx

    assert nx.is_directed_acyclic_graph(g)


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


def test_zeroing_an_unprunable_group_is_refused():
    m = small()
    space = otograph.search_space(m, torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="not prunable"):
        space.zero_(m, {"4": [0]})
    with pytest.raises(otograph.RewriteError, match="keep at least one"):
        otograph.compress(m, space, {"0.0": list(range(8))})
    with pytest.raises(otograph.RewriteError, match="units 0"):
        otograph.compress(m, space, {"0.0": [8]})


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


class Swish2(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(2 * x)


def test_register_op_makes_a_custom_leaf_transparent():
    net = nn.Sequential(nn.Linear(4, 8), Swish2(), nn.Linear(8, 2)).eval()
    x = torch.randn(2, 4)
    opaque = otograph.search_space(net, x, leaf_modules=[Swish2])
    assert not opaque.group("0").prunable and "Swish2" in opaque.group("0").reason
    reg = otograph.Registry()
    otograph.register_op(Swish2, "unary", registry=reg)
    space = otograph.search_space(net, x, leaf_modules=[Swish2], registry=reg)
    assert space.group("0").prunable
    assert not otograph.search_space(net, x, leaf_modules=[Swish2]).group("0").prunable  # global untouched
    with pytest.raises(ValueError, match="family"):
        otograph.register_op(Swish2, "sideways", registry=reg)


def test_registering_a_kind_twice_is_an_error():
    reg = Registry(empty=True)
    reg.add(Rule("k", "passthrough", lambda call: None, (Swish2,)))
    with pytest.raises(KeyError, match="already registered"):
        reg.add(Rule("k", "passthrough", lambda call: None))
    with pytest.raises(KeyError, match="already registered"):
        reg.add(Rule("k2", "passthrough", lambda call: None, (Swish2,)))
    with pytest.raises(ValueError, match="family"):
        reg.add(Rule("k3", "sideways", lambda call: None))


def test_register_op_never_silently_replaces_a_builtin_rule():
    reg = otograph.Registry()
    with pytest.raises(KeyError, match="already has the rule 'conv'"):
        otograph.register_op(nn.Conv2d, "opaque", registry=reg)
    with pytest.raises(TypeError):
        otograph.register_op(Swish2, "unary")  # no registry: the caller must own one
    otograph.register_op(nn.Conv2d, "opaque", registry=reg, replace=True)  # on purpose, in a copy
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()
    x = torch.randn(1, 3, 8, 8)
    assert not otograph.search_space(net, x, registry=reg).prunable_groups
    assert otograph.search_space(net, x).group("0").prunable  # the built-in rules are untouched
    assert BUILTIN.kind_of_target(nn.Conv2d) == "conv"


def test_every_rule_lives_in_the_file_of_its_family():
    for rule in BUILTIN.rules.values():
        assert rule.couple.__module__ == f"otograph.analysis.rules.{rule.family}", rule


def _kinds(space) -> set:
    return {k for _, k in space.graph.nodes(data="kind") if k}


def test_every_rule_is_exercised_by_a_tiny_model():
    """Walk the registry: every built-in op kind must be used by some test topology."""
    from tests.tricky_models import TRAPS, TRICKY

    seen = set()
    for cls, make in TRICKY.values():
        for frontend in ("fx", "export"):
            seen |= _kinds(otograph.search_space(cls().eval(), make(), frontend=frontend))
    for cls, make, *_ in TRAPS.values():
        seen |= _kinds(otograph.search_space(cls().eval(), make()))
    import torchvision

    vit = torchvision.models.vit_b_32(image_size=32).eval()
    seen |= _kinds(otograph.search_space(vit, torch.randn(1, 3, 32, 32)))
    missing = set(BUILTIN.rules) - seen - {"identity"}
    assert not missing, f"rules without a tiny model exercising them: {sorted(missing)}"


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
