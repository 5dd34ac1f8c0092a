"""The exactness invariant on our own tricky topologies, plus traps that must stay unprunable."""

import pytest
import torch

import otograph
from otograph.graph.effects import mutated_operand
from otograph.testing import check_exact
from otograph.testing.topologies import TRAPS, TRICKY


@pytest.mark.parametrize("name", sorted(TRICKY))
@pytest.mark.parametrize("seed,frontend", [(0, "fx"), (1, "fx"), (2, "export")])
def test_exact_after_random_pruning(name, seed, frontend):
    cls, make = TRICKY[name]
    torch.manual_seed(seed)
    model = cls().eval()
    res = check_exact(model, make(), make(), fraction=0.3, seed=seed, frontend=frontend)
    assert res.space.prunable_groups, f"{name}: nothing prunable"
    assert res.units, f"{name}: no units were removed"
    v = res.verification
    assert v.max_ref > 1e-3, "outputs are trivially zero: the check would be vacuous"
    assert v.exact, f"{name}: max|Δ| = {v.max_abs} (max|y| = {v.max_ref})"
    assert v.params_after == res.expected_params
    assert v.params_after < v.params_before


@pytest.mark.parametrize("name", sorted(TRAPS))
def test_traps_stay_unprunable(name):
    cls, make, gid, word = TRAPS[name]
    space = otograph.search_space(cls().eval(), make())
    g = space.group(gid)
    assert not g.prunable
    assert word.lower() in g.reason.lower(), g.reason


def test_attention_units_are_heads():
    from otograph.testing.topologies import HandAttention

    space = otograph.search_space(HandAttention().eval(), torch.randn(2, 5, 24))
    qkv = space.group("qkv")
    assert qkv.prunable and qkv.num_units == 4  # 4 heads, each with q, k and v rows
    rows = next(m for m in qkv.members if m.param == "qkv.weight" and m.axis == 0)
    assert sorted(rows.indices(0)) == list(range(0, 6)) + list(range(24, 30)) + list(range(48, 54))
    for name in ("q2", "k2", "v2"):
        assert any(m.param == f"{name}.weight" for m in space.group("q2").members)


def test_glu_gate_and_up_are_one_unit():
    from otograph.testing.topologies import GLUGate

    space = otograph.search_space(GLUGate().eval(), torch.randn(2, 3, 6))
    g = space.group("gate_up")
    assert g.prunable and g.num_units == 16
    rows = next(m for m in g.members if m.param == "gate_up.weight" and m.axis == 0)
    assert rows.indices(3) == [3, 19]
    w13 = space.group("w1")
    assert {m.param for m in w13.members} >= {"w1.weight", "w3.weight", "w2.weight"}


def test_grouped_conv_units_are_whole_groups():
    from otograph.testing.topologies import GroupedConv

    space = otograph.search_space(GroupedConv().eval(), torch.randn(1, 3, 8, 8))
    g = space.group("c1.0")  # conv1's channels are tied to the 4 conv groups of g
    assert g.prunable and g.num_units == 4
    out_rows = next(m for m in g.members if m.param == "g.0.weight" and m.axis == 0)
    assert out_rows.indices(1) == list(range(6, 12))


def test_cosine_attention_heads_are_units():
    """Swin V2's cosine attention: heads prunable, with the logit scale and the position-bias MLP's
    rows as members; the cloned qkv bias is sliced and its zeroed k block keeps its place."""
    from otograph.testing.topologies import CosineAttention

    for frontend in ("fx", "export"):
        space = otograph.search_space(CosineAttention().eval(), torch.randn(2, 5, 24), frontend=frontend)
        heads = space.group("qkv")
        assert heads.prunable and heads.num_units == 4, (frontend, heads)
        params = {m.param for m in heads.members}
        assert {"qkv.weight", "qkv.bias", "logit_scale", "cpb.2.weight", "proj.weight"} <= params


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_in_place_ops_are_kept_in_the_compact_model(frontend):
    """Unassigned in-place ops must survive dead-code elimination: with nothing removed the
    compact model equals the model, and the in-place calls are still in its graph."""
    from otograph.testing.topologies import InPlace

    model = InPlace().eval()
    x = torch.randn(2, 3, 8, 8)
    space = otograph.search_space(model, x, frontend=frontend)
    compact = otograph.compress(model, space, {})
    assert torch.equal(compact(x), model(x))
    modules = dict(compact.named_modules())
    in_place = [n for n in compact.graph.nodes if mutated_operand(n, modules.get(n.target)) is not None]
    assert len(in_place) == 5, [n.format_node() for n in in_place]  # relu_, relu(inplace), mul_, act, sigmoid_


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_output_container_type_is_kept(frontend):
    """An ``OrderedDict`` output stays one (fx alone would return a plain dict)."""
    from collections import OrderedDict

    from otograph.testing.topologies import OrderedDictOutput

    model, x = OrderedDictOutput().eval(), torch.randn(1, 3, 8, 8)
    space = otograph.search_space(model, x, frontend=frontend)
    out = otograph.compress(model, space, {"body.0": [0, 3]})(x)
    assert type(out) is OrderedDict and list(out) == ["out", "0"]
    assert out["out"].shape == (1, 3, 8, 8)


def test_gating_across_axes_keeps_the_channels():
    """gMLP: ``u * proj(v)`` with ``u`` structured along channels and ``proj(v)`` along tokens: the
    channels of ``u`` stay prunable (with ConvNeXt-V2's response-norm parameters as members); the
    token projection is pinned, with the reason."""
    from otograph.testing.topologies import SpatialGating

    space = otograph.search_space(SpatialGating().eval(), torch.randn(2, 5, 6))
    u = next(g for g in space.groups if any(m.param == "gamma" for m in g.members))
    assert u.prunable and u.num_units == 8
    assert {"fc1.weight", "beta", "gamma", "fc2.weight"} <= {m.param for m in u.members}
    proj = space.group("proj")
    assert not proj.prunable and "other axes" in proj.reason
