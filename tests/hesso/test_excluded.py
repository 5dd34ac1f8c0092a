"""HESSO writes only what it was given: groups with a frozen, left-out or buffer producer are excluded."""

from __future__ import annotations

import io
import logging
import re

import pytest
import torch
from torch import nn

import otograph
from hesso import CRIC, HESSO
from hesso.units import UnitLayout, exclusions
from otograph.testing.spaces import CNN, cnn_space

STEPS = 24
SCHEDULE = dict(target_group_sparsity=0.5, start_pruning_step=2, pruning_steps=16, pruning_periods=2)
VARIANTS = {"sgd": dict(lr=0.05, momentum=0.9, weight_decay=1e-3), "adamw": dict(lr=1e-2, weight_decay=0.1)}


def cnn():
    torch.manual_seed(0)
    model = CNN().double()
    return model, otograph.search_space(model, torch.zeros(2, 1, 8, 8, dtype=torch.float64))


def group_of(space, param):
    """Id of the prunable group in which ``param`` is a producer."""
    [gid] = [g.id for g in space.prunable_groups for m in g.producers if m.param == param]
    return gid


def train(model, opt, steps=STEPS, watch=()):
    """Train on random batches, asserting that ``opt.step`` leaves the gradients of ``watch`` alone."""
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(8, 1, 8, 8, generator=g, dtype=torch.float64)
        y = torch.randint(0, 4, (8,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        grads = [p.grad.clone() for p in watch]
        opt.step()
        for p, grad in zip(watch, grads, strict=True):
            assert torch.equal(p.grad, grad), "HESSO.step wrote the gradient of a parameter it does not own"


def snapshot(module):
    """Copies of the parameters (running statistics change in every training forward, HESSO or not)."""
    return {n: t.detach().clone() for n, t in module.named_parameters()}


def check_budget_among_included(model, space, opt, excluded_gid):
    """The other groups still reach ⌊s·N⌋ units of the N included ones, all exactly zero."""
    m = opt.metrics()
    included = sum(g.num_units for g in space.prunable_groups if g.id != excluded_gid)
    assert m["stage"] == "done"
    assert m["units_total"] == included
    assert m["units_excluded"] == space.group(excluded_gid).num_units
    assert m["units_pruned"] == included // 2
    assert excluded_gid not in opt.pruned_units
    assert space.zero_units(model) == opt.pruned_units
    compact = otograph.compress(model, space)
    v = otograph.verify(model, compact, torch.randn(4, 1, 8, 8, dtype=torch.float64))
    assert v.exact, v


@pytest.mark.parametrize("variant", ["sgd", "adamw"])
@pytest.mark.parametrize("cric", [False, True])
def test_frozen_layer_is_bit_identical_and_its_group_excluded(variant, cric):
    model, space = cnn()
    model.conv1.requires_grad_(False)
    before = snapshot(model.conv1)
    gid = group_of(space, "conv1.weight")
    opt = HESSO(model, space, variant=variant, cric=CRIC(max_cycles=2, cycle_steps=2) if cric else None,
                **VARIANTS[variant], **SCHEDULE)
    train(model, opt)
    after = snapshot(model.conv1)
    assert all(torch.equal(before[k], after[k]) for k in before), "a frozen parameter was changed"
    assert opt.metrics()["excluded_groups"] == {gid: "producer conv1.weight is frozen (requires_grad=False)"}
    check_budget_among_included(model, space, opt, gid)
    # the norm after the frozen conv is trainable and trained, but never zeroed: its group is not pruned
    assert bool(model.bn1.weight.ne(0).all())


@pytest.mark.parametrize("cric", [False, True])
def test_layer_left_out_of_params_is_untouched_and_its_group_excluded(cric):
    """conv2 and bn2 are left out (bn2's gradients are never exactly zero, so a hold would show)."""
    model, space = cnn()
    before = {**snapshot(model.conv2), **{f"bn.{k}": v for k, v in snapshot(model.bn2).items()}}
    gid = group_of(space, "conv2.weight")
    params = [p for n, p in model.named_parameters() if not n.startswith(("conv2.", "bn2."))]
    opt = HESSO(model, space, params=params, variant="sgd", cric=CRIC(max_cycles=2, cycle_steps=2) if cric else None,
                **VARIANTS["sgd"], **SCHEDULE)
    train(model, opt, watch=[*model.conv2.parameters(), *model.bn2.parameters()])
    after = {**snapshot(model.conv2), **{f"bn.{k}": v for k, v in snapshot(model.bn2).items()}}
    assert all(torch.equal(before[k], after[k]) for k in before), "a parameter left out of params= was changed"
    [(excluded, reason)] = opt.metrics()["excluded_groups"].items()
    assert excluded == gid and re.fullmatch(r"producer (conv2|bn2)\.\w+ is not among the optimizer's parameters",
                                            reason), reason
    assert model.bn2.bias.grad is not None  # it does get gradients: only HESSO's writes are ruled out
    check_budget_among_included(model, space, opt, gid)


def test_another_optimizer_owns_the_left_out_layer():
    """Two optimizers, one model: HESSO prunes its share; the other's layer trains as plain SGD would."""
    model, space = cnn()
    ref = CNN().double()
    ref.load_state_dict(model.state_dict())
    head = [p for n, p in model.named_parameters() if n.startswith("conv2.")]
    opt = HESSO(model, space, params=[p for p in model.parameters() if all(p is not h for h in head)],
                variant="sgd", **VARIANTS["sgd"], **SCHEDULE)
    other = torch.optim.SGD(head, lr=0.01)
    ref_other = torch.optim.SGD(ref.conv2.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        x = torch.randn(8, 1, 8, 8, generator=g, dtype=torch.float64)
        y = torch.randint(0, 4, (8,), generator=g)
        for net, opts in ((model, (opt, other)), (ref, (ref_other,))):
            for o in opts:
                o.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
        ref.conv2.weight.grad.copy_(model.conv2.weight.grad)  # same gradient, whatever HESSO did upstream
        ref.conv2.bias.grad.copy_(model.conv2.bias.grad)
        opt.step()
        other.step()
        ref_other.step()
    assert torch.equal(model.conv2.weight, ref.conv2.weight) and torch.equal(model.conv2.bias, ref.conv2.bias)
    assert group_of(space, "conv2.weight") in opt.metrics()["excluded_groups"]
    assert opt.metrics()["units_pruned"] == space.group(group_of(space, "conv1.weight")).num_units // 2


class BufferWeight(nn.Module):
    """A linear layer whose weight is a buffer (a fixed projection), then a trainable norm."""

    def __init__(self):
        super().__init__()
        self.register_buffer("proj", torch.randn(6, 5))
        self.bias = nn.Parameter(torch.zeros(6))
        self.bn = nn.BatchNorm1d(6)
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.bn(nn.functional.linear(x, self.proj, self.bias)))
        return self.fc2(torch.relu(self.fc1(h)))


def test_buffer_producer_is_never_written():
    torch.manual_seed(0)
    model = BufferWeight()
    space = otograph.search_space(model, torch.randn(4, 5))
    gid = group_of(space, "proj")
    proj = model.proj.clone()
    opt = HESSO(model, space, lr=0.05, target_group_sparsity=0.5, start_pruning_step=1, pruning_steps=4)
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        x, y = torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert torch.equal(model.proj, proj), "a buffer was written"
    assert opt.metrics()["excluded_groups"] == {gid: "producer proj is a buffer, not a parameter"}
    assert opt.metrics()["units_pruned"] == model.fc1.out_features // 2
    assert set(opt.pruned_units) == {group_of(space, "fc1.weight")}


def test_excluded_groups_are_logged_once_and_summarised(caplog):
    model, space = cnn()
    model.conv1.requires_grad_(False)
    with caplog.at_level(logging.WARNING, logger="hesso.optimizer"):
        opt = HESSO(model, space, **SCHEDULE)
        train(model, opt, steps=4)
    excluded = [r for r in caplog.records if "excludes" in r.getMessage()]
    assert len(excluded) == 1 and "conv1.weight is frozen" in excluded[0].getMessage()
    s = opt.summary()
    assert "excluded" in s and "conv1.weight is frozen" in s
    # nothing frozen: nothing excluded, and nothing said
    caplog.clear()
    model, space = cnn()
    with caplog.at_level(logging.WARNING, logger="hesso.optimizer"):
        opt = HESSO(model, space, **SCHEDULE)
    assert opt.metrics()["excluded_groups"] == {} and opt.metrics()["units_excluded"] == 0
    assert "excluded" not in opt.summary() and not caplog.records


def test_state_dict_refuses_another_exclusion():
    model, space = cnn()
    model.conv1.requires_grad_(False)
    opt = HESSO(model, space, **SCHEDULE)
    train(model, opt, steps=3)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True)
    model2, space2 = cnn()
    model2.conv1.requires_grad_(False)
    same = HESSO(model2, space2, **SCHEDULE)
    same.load_state_dict(sd)
    assert same.metrics()["step"] == 3
    model3, space3 = cnn()
    model3.conv2.requires_grad_(False)
    other = HESSO(model3, space3, **SCHEDULE)
    with pytest.raises(ValueError, match="excluded groups"):
        other.load_state_dict(sd)


def test_exclusions_reasons_and_checks():
    model = CNN()
    space = cnn_space(model)
    assert exclusions(space.groups, model) == {}
    assert exclusions(space.groups, model, owned=[model.conv1.weight, model.conv1.bias, model.bn1.weight,
                                                  model.bn1.bias]) == {
        "conv2": "producer conv2.weight is not among the optimizer's parameters"}
    model.bn2.bias.requires_grad_(False)
    assert exclusions(space.groups, model) == {"conv2": "producer bn2.bias is frozen (requires_grad=False)"}
    layout = UnitLayout(model, space)
    assert [g.id for g in layout.groups] == ["conv1"] and layout.num_units == 6
    assert {s.name for s in layout.slots} == {"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"}
    assert "1 excluded" in repr(layout)
    bad = type(space.groups[0].members[0])("conv1.weight", 0, torch.arange(6), torch.arange(6), "owner", 6)
    with pytest.raises(ValueError, match="role 'owner'"):
        exclusions([type(space.groups[0])("x", 6, (bad,), True, None, torch.ones(6), torch.ones(6))], model)


def test_unreachable_cost_budget_is_refused_with_the_most_that_can_go():
    """With conv2's group excluded, conv1's units carry too few parameters for a 95% cut."""
    model, space = cnn()
    model.conv2.requires_grad_(False)
    reachable = float(space.group(group_of(space, "conv1.weight")).unit_params.sum()) / space.total_params
    assert reachable < 0.95
    with pytest.raises(ValueError, match=r"95.0% params reduction cannot be reached: .* cuts \d+\.\d%"):
        HESSO(model, space, target_param_reduction=0.95, pruning_steps=4)
    HESSO(model, space, target_param_reduction=reachable / 2, pruning_steps=4)


def test_frozen_layer_passed_in_params_is_still_untouched():
    model, space = cnn()
    model.conv1.requires_grad_(False)
    before = snapshot(model.conv1)
    opt = HESSO(model, space, params=model.parameters(), cric=CRIC(max_cycles=2, cycle_steps=2),
                **VARIANTS["sgd"], **SCHEDULE)
    train(model, opt)
    after = snapshot(model.conv1)
    assert all(torch.equal(before[k], after[k]) for k in before), "a frozen parameter was changed"
    assert list(opt.metrics()["excluded_groups"]) == [group_of(space, "conv1.weight")]
