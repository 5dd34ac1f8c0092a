import doctest

import pytest
import torch

import hesso.saliency
from hesso.saliency import Probe, combine, criteria
from hesso.units import UnitLayout, UnitScaler
from otograph.analysis.space import Group, SearchSpace
from otograph.testing.spaces import CNN, channel_group, cnn_space, member


def test_doctests():
    assert doctest.testmod(hesso.saliency).failed == 0


def shuffled_space(model):
    """The CNN space, with conv2's units mapped to scattered positions and one position unused."""
    space = cnn_space(model)
    g1, g2 = space.groups
    perm = torch.tensor([3, 0, 6, 1, 7, 2, 4])  # 7 units over 8 channels; channel 5 is in no unit
    members = []
    for m in g2.members:
        members.append(type(m)(m.param, m.axis, perm.clone(), torch.arange(7), m.role, m.size))
    g2 = Group("conv2", 7, tuple(members), True, None, torch.ones(7), torch.ones(7))
    return SearchSpace([g1, g2], space.total_params, space.total_flops)


def slow_rows(model, space, x_before, dirs):
    """Per unit: concatenation of its producer slices of params and directions (loop reference)."""
    out = []
    for g in space.groups:
        for u in range(g.num_units):
            xs, ds = [], []
            for m in g.producers:
                idx = m.positions[m.units == u]
                xs.append(x_before[m.param].index_select(m.axis, idx).flatten())
                ds.append(dirs[m.param].index_select(m.axis, idx).flatten())
            out.append((torch.cat(xs).double(), torch.cat(ds).double()))
    return out


BASES = {
    "sgd": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
    "sgd-nesterov": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    "sgd-plain": (torch.optim.SGD, dict(lr=0.05, weight_decay=1e-2, maximize=True)),
    "adam": (torch.optim.Adam, dict(lr=1e-2, weight_decay=1e-2, amsgrad=True)),
    "adamw": (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
}


@pytest.mark.parametrize("name", list(BASES))
def test_probe_sums_and_criteria_match_a_loop_over_units(name):
    """The probe reads d from the state the step left; the reference takes d from the parameter change."""
    torch.manual_seed(0)
    model = CNN().double()
    space = shuffled_space(model)
    layout = UnitLayout(model, space)
    cls, hp = BASES[name]
    opt = cls(model.parameters(), **hp)
    variant = name.split("-")[0]
    g = torch.Generator().manual_seed(0)
    probe = Probe(layout.slots, layout.num_units)
    for _ in range(3):
        opt.zero_grad()
        x = torch.randn(8, 1, 8, 8, generator=g, dtype=torch.float64)
        torch.nn.functional.cross_entropy(model(x), torch.randint(0, 4, (8,), generator=g)).backward()
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt.step()
        acc = probe.measure(variant, {id(p): opt.param_groups[0] for p in model.parameters()}, opt.state)
    lr, wd = hp["lr"], hp["weight_decay"]
    shrink = 1 - lr * wd if name == "adamw" else 1.0  # decoupled decay: x_after = x_before*shrink - lr*d
    dirs = {n: (before[n] * shrink - p.detach()) / lr for n, p in model.named_parameters()}
    xx, dd, xd = acc[:, :layout.num_units]
    rows = slow_rows(model, space, before, dirs)
    torch.testing.assert_close(xx, torch.stack([(x * x).sum() for x, _ in rows]))
    torch.testing.assert_close(dd, torch.stack([(d * d).sum() for _, d in rows]))
    torch.testing.assert_close(xd, torch.stack([(x * d).sum() for x, d in rows]))
    assert layout.unit_size.tolist() == [float(x.numel()) for x, _ in rows]
    c = criteria(xx, dd, xd, layout.unit_size)
    cos = torch.stack([(x * d).sum() / (x.norm() + 1e-8) / (d.norm() + 1e-8) + 1 for x, d in rows])
    torch.testing.assert_close(c["cosine_similarity"], cos)
    torch.testing.assert_close(c["taylor_second_order"], 0.5 * c["taylor_first_order"] ** 2)


def test_probe_chunks_agree_with_one_pass(monkeypatch):
    """Rows measured in blocks (bounded memory) give the sums of one pass, for slots on both axes."""
    torch.manual_seed(1)
    model = CNN().double()
    rows = channel_group("rows", 8, [("conv2.weight", 0)])
    cols = channel_group("cols", 6, [("conv2.weight", 1)])
    space = SearchSpace([rows, cols], 1, 1)
    layout = UnitLayout(model, space)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    model(torch.randn(4, 1, 8, 8, dtype=torch.float64)).square().mean().backward()
    group_of = {id(p): opt.param_groups[0] for p in model.parameters()}
    snap = {n: p.detach().clone() for n, p in model.named_parameters()}
    results = []
    for chunk in (1 << 22, 9 * 6 * 3):  # all at once; three rows of conv2.weight per block
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(snap[n])
        opt.state.clear()
        monkeypatch.setattr(hesso.saliency, "CHUNK", chunk)
        probe = Probe(layout.slots, layout.num_units)
        opt.step()
        results.append(probe.measure("adamw", group_of, opt.state))
    torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=1e-12)
    assert results[0][:, :14].abs().min() > 0


def test_combine_normalises_each_criterion():
    raw = {"magnitude": torch.tensor([3.0, 4.0]), "avg_magnitude": torch.tensor([30.0, 40.0]),
           "cosine_similarity": torch.tensor([0.0, 0.0]), "taylor_first_order": torch.tensor([1.0, 0.0]),
           "taylor_second_order": torch.tensor([1.0, 0.0])}
    s = combine(raw)
    torch.testing.assert_close(s, torch.tensor([0.2 * 0.6 * 2 + 0.4, 0.2 * 0.8 * 2]), atol=1e-6, rtol=0)
    only_mag = combine(raw, {"magnitude": 1.0})
    torch.testing.assert_close(only_mag, torch.tensor([0.6, 0.8]), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="unknown"):
        combine(raw, {"hessian": 1.0})


def test_scaler_multiplies_only_unit_positions():
    torch.manual_seed(1)
    model = CNN()
    space = shuffled_space(model)
    layout = UnitLayout(model, space)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    factor = torch.ones(layout.num_units + 1, dtype=torch.float64)
    factor[6 + 0] = 0.5  # conv2 unit 0 -> channel 3
    UnitScaler(layout.slots).load(factor).mul_()
    w = model.conv2.weight.detach()
    assert torch.equal(w[3], before["conv2.weight"][3] * 0.5)
    keep = [c for c in range(8) if c != 3]
    assert torch.equal(w[keep], before["conv2.weight"][keep])
    assert torch.equal(model.bn2.bias[3], before["bn2.bias"][3] * 0.5)
    assert torch.equal(model.fc.weight, before["fc.weight"])  # consumers are never scaled


def test_overlapping_positions_are_rejected():
    model = CNN()
    g = Group("dup", 2, (member("conv1.weight", 0, 2, "producer"),), True, None, torch.ones(2), torch.ones(2))
    space = SearchSpace([g, Group("dup2", 2, g.members, True, None, torch.ones(2), torch.ones(2))], 1, 1)
    with pytest.raises(ValueError, match="already belong"):
        UnitLayout(model, space)
