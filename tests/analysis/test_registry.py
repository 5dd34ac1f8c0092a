"""The op registry: user registries, no silent replacement, one family per file, every rule exercised."""



import pytest
import torch
import torch.nn as nn

import otograph
from otograph.analysis.registry import BUILTIN, Registry, Rule


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
    from otograph.testing.topologies import TRAPS, TRICKY

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


def test_a_failing_rule_is_opaque_or_in_strict_mode_an_error_naming_the_node():
    def broken(call):
        raise RuntimeError("boom")

    reg = Registry()
    reg.add(Rule("broken", "passthrough", broken, (Swish2,)))
    net = nn.Sequential(nn.Linear(4, 8), Swish2(), nn.Linear(8, 2)).eval()
    x = torch.randn(2, 4)
    space = otograph.search_space(net, x, leaf_modules=[Swish2], registry=reg)
    assert not space.group("0").prunable and "rule error" in space.group("0").reason
    with pytest.raises(otograph.AnalysisError, match="boom") as info:
        otograph.search_space(net, x, leaf_modules=[Swish2], registry=reg, strict=True)
    assert info.value.node.name == "_1" and info.value.op == "broken" and "at node" in str(info.value)
