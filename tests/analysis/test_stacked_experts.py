"""Whole experts as units: matrices picked from a stacked parameter by a routing index
(``W[expert_ids]``, MoE). The compact model keeps the router whole and picks a removed expert's
matrices as zeros, exactly what the zeroed model computes, so an expert is removable whatever
follows it."""

import pytest
import torch
import torch.nn as nn

from otograph.testing.exact import check_exact


class TinyMoE(nn.Module):
    """Top-2 routing over 4 experts (stacked up/down matrices, ``bmm`` per picked pair), a residual."""

    def __init__(self, experts: int = 4, hidden: int = 6, inner: int = 5, top_k: int = 2):
        super().__init__()
        self.top_k = top_k
        self.inp = nn.Linear(3, hidden)
        self.router = nn.Linear(hidden, experts, bias=False)
        self.up = nn.Parameter(torch.randn(experts, inner, hidden))
        self.down = nn.Parameter(torch.randn(experts, hidden, inner))
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):
        h = self.inp(x)
        weights, idx = self.router(h).softmax(-1).topk(self.top_k, -1)
        idx, hh = idx.reshape(-1), h.repeat_interleave(self.top_k, 0)
        y = torch.bmm(self.up[idx], hh.unsqueeze(-1)).squeeze(-1).sigmoid()  # sigmoid(0) ≠ 0
        y = torch.bmm(self.down[idx], y.unsqueeze(-1)).squeeze(-1) * weights.reshape(-1, 1)
        return self.head(y.reshape(-1, self.top_k, y.shape[-1]).sum(1) + h)


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_whole_experts_are_units_and_exact(frontend):
    torch.manual_seed(0)
    model = TinyMoE().eval()
    x, y = torch.randn(16, 3), torch.randn(16, 3)
    res = check_exact(model, x, y, frontend=frontend, fraction=0.5)
    v = res.verification
    assert v.exact and v.max_ref > 0.1 and v.params_after == res.expected_params, v
    experts = next(g for g in res.space.prunable_groups if g.num_units == 4)
    assert {(m.param, m.axis) for m in experts.members} == {("up", 0), ("down", 0)}
    assert len(res.units[experts.id]) == 2  # half the experts went
    # the router keeps a row per expert: a removed expert is still picked, as zeros
    router = next(g for g in res.space.groups if any(m.param == "router.weight" and m.axis == 0 for m in g.members))
    assert not router.prunable
    # each removed expert cost its two matrices: 2 × (5 × 6) parameters, and no FLOPs (every pick still runs)
    assert experts.unit_params.tolist() == [60.0] * 4 and experts.unit_flops.sum() == 0


def test_a_model_without_some_experts_saves_and_reloads(tmp_path):
    """The index map and the keep mask are buffers of the compact model: ``model.pt2`` and
    ``model.py`` reproduce it, and the state dict holds only the kept experts."""
    import importlib.util

    import otograph
    from otograph.rewrite.save import load_exported, save_compact

    torch.manual_seed(0)
    model = TinyMoE().eval()
    x = torch.randn(16, 3)
    space = otograph.search_space(model, x)
    experts = next(g for g in space.prunable_groups if g.num_units == 4)
    units = {experts.id: [1, 2]}
    space.zero_(model, units)
    compact = otograph.compress(model, space, units)
    assert compact.get_parameter("up").shape == (2, 5, 6) and compact.get_parameter("down").shape == (2, 6, 5)
    want = compact(x)
    assert torch.allclose(want, model(x), rtol=0, atol=1e-6)
    info = save_compact(compact, x, tmp_path)
    assert info["pt2"] and info["standalone_py"], info
    spec = importlib.util.spec_from_file_location("compact_moe", tmp_path / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for net in (load_exported(tmp_path / "model.pt2"), mod.load(str(tmp_path / "state_dict.pt"))):
        assert torch.equal(net(x), want)


def test_in_place_refuses_whole_experts_and_leaves_the_model():
    """The model's own code indexes its full stack of experts: removing whole experts in place is
    refused up front, naming the group and the way out; the model keeps every tensor."""
    import otograph
    from otograph.rewrite.inplace import ShrinkError

    torch.manual_seed(0)
    model = TinyMoE().eval()
    x = torch.randn(16, 3)
    space = otograph.search_space(model, x)
    experts = next(g for g in space.prunable_groups if g.num_units == 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ShrinkError, match="picks by index") as e:
        otograph.compress(model, space, {experts.id: [1]}, inplace=True)
    assert "otograph.compress(model, space, units)" in e.value.hint
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kind", ["flops", "params"])
def test_hesso_removes_experts_only_for_a_parameter_target(kind):
    """A whole expert saves parameters but no FLOPs (the routed picks all still run): a FLOPs target
    never spends units on it, a parameter target may; the compact model is the zeroed one."""
    import otograph
    from hesso import HESSO, Target

    torch.manual_seed(0)
    model = TinyMoE(experts=8, inner=4).eval()
    with torch.no_grad():  # experts 0-3 nearly zero: the least salient units of all
        model.up[:4] *= 1e-4
        model.down[:4] *= 1e-4
    x = torch.randn(32, 3)
    space = otograph.search_space(model, x)
    experts = next(g for g in space.prunable_groups if g.num_units == 8)
    opt = HESSO(model, space, lr=1e-2, target=Target(kind, 0.5), start_pruning_step=0, pruning_steps=2,
                pruning_periods=2)
    for _ in range(3):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    gone = opt.pruned_units
    assert bool(gone.get(experts.id)) == (kind == "params"), gone
    compact = otograph.compress(model, space)
    assert torch.allclose(compact(x), model(x), rtol=0, atol=1e-6)
