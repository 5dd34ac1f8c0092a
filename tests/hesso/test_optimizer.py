"""HESSO against torch.optim (bit for bit with pruning off) and against a slow reference update."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hesso import HESSO
from hesso.schedule import decay_factor
from otograph.analysis.space import SearchSpace
from otograph.testing.spaces import CNN, MLP, channel_group, cnn_space, mlp_space

BASES = {
    "sgd": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-3)),
    "adam": (torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3)),
    "adamw": (torch.optim.AdamW, dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)),
}


def batches(n, d_in=6, bs=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, d_in, generator=g), torch.randint(0, 3, (bs,), generator=g)) for _ in range(n)]


def train(model, opt, data, closure=False):
    losses = []
    for x, y in data:
        def loss_fn(x=x, y=y):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss
        if closure:
            losses.append(opt.step(loss_fn).item())
        else:
            losses.append(loss_fn().item())
            opt.step()
    return losses


@pytest.mark.parametrize("variant", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("budget", [{}, {"target_group_sparsity": 0.5, "start_pruning_step": 1000,
                                         "pruning_steps": 10}])
def test_pruning_off_matches_torch_bit_for_bit(variant, budget):
    torch.manual_seed(0)
    a = MLP()
    b = copy.deepcopy(a)
    cls, hp = BASES[variant]
    ref = cls(a.parameters(), **hp)
    opt = HESSO(b, mlp_space(b), variant=variant, **hp, **budget)
    data = batches(100)
    la, lb = train(a, ref, data), train(b, opt, data)
    assert la == lb
    for (n, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), n
    # the state really is torch's state
    sa, sb = ref.state_dict()["state"], opt.state_dict()["state"]
    for k in sa:
        for key, v in sa[k].items():
            assert torch.equal(v, sb[k][key]) if torch.is_tensor(v) else v == sb[k][key]


def test_param_groups_scheduler_and_closure_match_torch():
    torch.manual_seed(1)
    a = MLP()
    b = copy.deepcopy(a)

    def groups(m):
        decay = [p for n, p in m.named_parameters() if n.endswith("weight")]
        no_decay = [p for n, p in m.named_parameters() if n.endswith("bias")]
        return [{"params": decay, "weight_decay": 1e-2}, {"params": no_decay, "weight_decay": 0.0, "lr": 0.01}]

    ref = torch.optim.SGD(groups(a), lr=0.1, momentum=0.9, nesterov=True)
    opt = HESSO(b, mlp_space(b), params=groups(b), variant="sgd", lr=0.1, momentum=0.9, nesterov=True)
    sa = torch.optim.lr_scheduler.StepLR(ref, step_size=7, gamma=0.5)
    sb = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
    for x, y in batches(30):
        la = train(a, ref, [(x, y)], closure=True)
        lb = train(b, opt, [(x, y)], closure=True)
        assert la == lb
        sa.step()
        sb.step()
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in ref.param_groups]
    assert opt.param_groups[1]["weight_decay"] == 0.0
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def slices(space, gid, units):
    """(param name, axis, positions) of the producer slices of some units."""
    out = []
    for m in space.group(gid).producers:
        out.append((m.param, m.axis, m.positions[torch.isin(m.units, torch.as_tensor(units))]))
    return out


def reference_run(model, space, data, hp, plan, D, start):
    """Slow per-unit HESSO update with torch SGD as the base: ``plan[p] = {gid: units}``."""
    base = torch.optim.SGD(model.parameters(), **hp)
    params = dict(model.named_parameters())
    pruned: dict[str, list[int]] = {}
    for k, (x, y) in enumerate(data):
        base.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for gid, us in pruned.items():
                for name, axis, pos in slices(space, gid, us):
                    params[name].grad.index_fill_(axis, pos, 0)
        base.step()
        if start <= k < start + len(plan) * D:
            period, t = divmod(k - start, D)
            f = decay_factor(t, D)
            with torch.no_grad():
                factors: dict[str, torch.Tensor] = {}
                for gid, us in plan[period].items():
                    for name, axis, pos in slices(space, gid, us):
                        shape = [1] * params[name].dim()
                        shape[axis] = -1
                        v = torch.ones(params[name].shape[axis])
                        v[pos] = f
                        fac = v.view(shape)
                        factors[name] = fac if name not in factors else torch.minimum(factors[name], fac)
                for name, fac in factors.items():
                    params[name].mul_(fac)
                if t == D - 1:
                    for gid, us in plan[period].items():
                        pruned.setdefault(gid, []).extend(us)
                        for name, axis, pos in slices(space, gid, us):
                            base.state[params[name]]["momentum_buffer"].index_fill_(axis, pos, 0)
    return model


def test_hybrid_update_matches_slow_reference():
    torch.manual_seed(2)
    model = MLP()
    ref_model = copy.deepcopy(model)
    space = mlp_space(model)
    hp = dict(lr=0.05, momentum=0.9, weight_decay=1e-3)
    D, start = 5, 3
    opt = HESSO(model, space, variant="sgd", **hp, target_group_sparsity=0.5, start_pruning_step=start,
                pruning_steps=2 * D, pruning_periods=2)
    data = batches(20)
    plan = []
    for k, (x, y) in enumerate(data):
        train(model, opt, [(x, y)])
        if (k - start) % D == 0 and start <= k < start + 2 * D:
            plan.append(opt.layout.split((opt._status == 1).nonzero().flatten()))
    assert sum(len(v) for p in plan for v in p.values()) == 8  # floor(0.5 * 16), 4 per period
    reference_run(ref_model, space, data, hp, plan, D, start)
    for (n, pa), pb in zip(model.named_parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(pa, pb), n
    # pruned units are exactly zero and stay so; the optimizer knows which
    assert space.zero_units(model) == opt.pruned_units
    assert opt.metrics()["units_pruned"] == 8


def test_bn_members_and_state_zero_and_held_adam():
    torch.manual_seed(3)
    model = CNN()
    space = cnn_space(model)
    opt = HESSO(model, space, variant="adamw", lr=1e-2, weight_decay=0.05, target_group_sparsity=0.4,
                start_pruning_step=2, pruning_steps=6, pruning_periods=2)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 4, (8,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    pruned = opt.pruned_units
    assert sum(map(len, pruned.values())) == int(0.4 * 14)
    assert space.zero_units(model) == pruned
    for gid, us in pruned.items():
        for name, axis, pos in slices(space, gid, us):
            p = dict(model.named_parameters())[name]
            assert p.index_select(axis, pos).abs().max() == 0
            for key in ("exp_avg", "exp_avg_sq"):
                assert opt.state[p][key].index_select(axis, pos).abs().max() == 0, (name, key)
    # params outside the space still train
    assert opt.state[model.fc.bias]["exp_avg"].abs().sum() > 0


class Shared(nn.Module):
    """A weight whose rows and columns are producers of two different groups."""

    def __init__(self, n=5):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n, n))
        self.out = nn.Linear(n, 3)

    def forward(self, x):
        return self.out(torch.tanh(x @ self.w))


def test_element_hit_via_two_axes_is_scaled_once():
    torch.manual_seed(4)
    model = Shared()
    rows = channel_group("rows", 5, [("w", 0)])
    cols = channel_group("cols", 5, [("w", 1)], [("out.weight", 1)])
    space = SearchSpace([rows, cols], 35, 100)
    opt = HESSO(model, space, variant="sgd", lr=0.0, target_group_sparsity=0.8, pruning_steps=4)
    before = model.w.detach().clone()
    x, y = torch.randn(4, 5), torch.randint(0, 3, (4,))
    train(model, opt, [(x, y)])
    red = opt.layout.split((opt._status == 1).nonzero().flatten())
    r, c = red["rows"], red["cols"]
    assert r and c
    f = decay_factor(0, 4)
    expect = before.clone()
    mask = torch.zeros(5, 5, dtype=torch.bool)
    mask[r, :] = True
    mask[:, c] = True
    expect[mask] *= f
    assert torch.equal(model.w, expect)  # f, never f*f, where a row and a column cross
    for x, y in batches(3, d_in=5):
        train(model, opt, [(x, y)])
    assert space.zero_units(model) == opt.pruned_units


def test_budget_validation():
    model = MLP()
    space = mlp_space(model)
    with pytest.raises(ValueError, match="at most one"):
        HESSO(model, space, target_group_sparsity=0.5, target_flops_reduction=0.5, pruning_steps=10)
    with pytest.raises(ValueError, match="pruning_steps"):
        HESSO(model, space, target_group_sparsity=0.5)
    with pytest.raises(ValueError, match="variant"):
        HESSO(model, space, variant="lion")


@pytest.mark.parametrize("kind", ["flops", "params"])
def test_cost_budgets_reach_target(kind):
    torch.manual_seed(5)
    model = MLP(h1=16, h2=16)
    space = mlp_space(model)
    opt = HESSO(model, space, variant="sgd", lr=0.05, pruning_steps=6, pruning_periods=3,
                **{f"target_{'flops' if kind == 'flops' else 'param'}_reduction": 0.3})
    train(model, opt, batches(8))
    m = opt.metrics()
    key = "flops_reduction" if kind == "flops" else "param_reduction"
    assert m[key] >= 0.3
    assert (m["target_kind"], m["target_asked"], m["target_measured"]) == (kind, 0.3, m[key])
    assert f"target: 30.0% {kind} reduction asked, {m[key]:.1%} reached" in opt.summary()
    cost = opt.layout.unit_flops if kind == "flops" else opt.layout.unit_params
    assert m[key] - float(cost.max()) / (space.total_flops if kind == "flops" else space.total_params) < 0.3
    assert space.zero_units(model) == opt.pruned_units


def test_keeps_one_unit_per_group():
    model = MLP(h1=4, h2=4)
    space = mlp_space(model)
    opt = HESSO(model, space, variant="sgd", lr=0.01, target_group_sparsity=0.99, pruning_steps=2)
    train(model, opt, batches(3))
    assert {g: len(u) for g, u in opt.pruned_units.items()} == {"fc1": 3, "fc2": 3}


def test_metrics_and_summary():
    torch.manual_seed(6)
    model = MLP()
    space = mlp_space(model)
    opt = HESSO(model, space, variant="sgd", lr=0.05, target_group_sparsity=0.5, start_pruning_step=2,
                pruning_steps=4, pruning_periods=2)
    assert opt.metrics()["stage"] == "before"
    train(model, opt, batches(3))
    m = opt.metrics()
    assert (m["stage"], m["period"], m["units_redundant"], m["units_pruned"]) == ("pruning", 0, 4, 0)
    train(model, opt, batches(5))
    m = opt.metrics()
    assert (m["stage"], m["units_pruned"], m["group_sparsity"]) == ("done", 8, 0.5)
    assert (m["target_kind"], m["target_asked"], m["target_measured"]) == ("units", 0.5, 0.5)
    assert m["flops_removed"] == float(opt.layout.unit_flops[opt._status == 2].sum())
    s = opt.summary()
    assert "8/16 pruned (50.0%)" in s and "FLOPs removed" in s


def test_metrics_without_target():
    model = MLP()
    m = HESSO(model, mlp_space(model), variant="sgd", lr=0.05).metrics()
    assert (m["stage"], m["target_kind"], m["target_asked"], m["target_measured"]) == ("off", None, None, None)


def test_grad_free_members_are_not_masked_and_still_held():
    """Conv rows feeding a zeroed BN channel get exactly zero gradient: flagged, they skip the mask."""
    torch.manual_seed(7)
    model = CNN()
    space = cnn_space(model)
    for g in space.groups:
        for m in g.members:
            if m.param.startswith("conv") and m.param.endswith("weight") and m.axis == 0:
                object.__setattr__(m, "grad_free", True)
    opt = HESSO(model, space, variant="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3,
                target_group_sparsity=0.5, start_pruning_step=1, pruning_steps=4)
    g = torch.Generator().manual_seed(0)
    for _ in range(25):
        x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 4, (8,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    held = {s.name for s in opt.layout.slots_touching(opt._status == 2, skip_grad_free=True)}
    assert held == {"conv1.bias", "bn1.weight", "bn1.bias", "conv2.bias", "bn2.weight", "bn2.bias"} - {
        n for n in ("conv1.bias", "bn1.weight", "bn1.bias") if "conv1" not in opt.pruned_units} - {
        n for n in ("conv2.bias", "bn2.weight", "bn2.bias") if "conv2" not in opt.pruned_units}
    assert space.zero_units(model) == opt.pruned_units and opt.metrics()["units_pruned"] == 7
