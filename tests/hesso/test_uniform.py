"""HESSO(uniform=True): every group of a kind loses the same number of units, and the budget holds."""

import pytest
import torch

import otograph
from hesso import HESSO, Target
from hesso.uniform import default_kind, equalize, kinds_of
from otograph.graph.cost import count_params


def test_equalize_evens_out_to_the_mean_and_keeps_the_lowest_scores():
    scores = torch.tensor([0.1, 0.2, 0.9, 0.8, 0.5, 0.6, 0.7, 0.05])
    alive = torch.ones(8, dtype=torch.bool)
    offsets = torch.tensor([0, 4, 8])
    got = equalize(torch.tensor([0, 1, 7]), scores, alive, offsets, [1, 1], torch.tensor([0, 0]))
    assert got.tolist() == [0, 1, 4, 7]


def test_equalize_adds_even_steps_until_the_target_is_reached_cheapest_kind_first():
    # kind 0: groups 0 and 1 (4 units each); kind 1: group 2 (4 units, high scores)
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.15, 0.25, 0.35, 0.45, 0.9, 0.8, 0.95, 0.85])
    alive = torch.ones(12, dtype=torch.bool)
    offsets = torch.tensor([0, 4, 8, 12])
    kinds = torch.tensor([0, 0, 1])
    # the global choice took one unit of group 0 only: the mean rounds to 1 per group of kind 0 …
    got = equalize(torch.tensor([0]), scores, alive, offsets, [1, 1, 1], kinds)
    assert got.tolist() == [0, 4]
    # … and a target of five units needs two more steps of kind 0 (cheaper) before kind 1
    got = equalize(torch.tensor([0]), scores, alive, offsets, [1, 1, 1], kinds, reached=lambda m: int(m.sum()) >= 5)
    assert got.tolist() == [0, 1, 2, 4, 5, 6]
    # what cannot be reached stops when every group keeps its last unit
    got = equalize(torch.tensor([0]), scores, alive, offsets, [1, 1, 1], kinds, reached=lambda m: False)
    assert got.tolist() == [0, 1, 2, 4, 5, 6, 8, 9, 11]


def test_kinds_are_the_id_without_numbers_and_the_size():
    class G:
        def __init__(self, id, n):
            self.id, self.num_units = id, n

    groups = [G("layers.0.mlp", 48), G("layers.0.attn", 4), G("layers.1.mlp", 48), G("layers.1.attn", 4)]
    assert default_kind(groups[2]) == ("layers.#.mlp", 48)
    assert kinds_of(groups).tolist() == [0, 1, 0, 1]


def _run(kind):
    pytest.importorskip("transformers")
    from otograph.testing.transformers import ids, small

    torch.manual_seed(0)
    model, x = small("llama").eval(), ids("llama", 0)
    space = otograph.search_space(model, x, frontend="export")
    target = Target(kind, 0.3) if kind != "units" else None
    opt = HESSO(model, space, lr=1e-3, uniform=True, start_pruning_step=0, pruning_steps=2, pruning_periods=2,
                **({"target": target} if target else {"target_group_sparsity": 0.3}))
    for _ in range(3):
        opt.zero_grad()
        model(**x).last_hidden_state.square().mean().backward()
        opt.step()
    assert opt.metrics()["stage"] == "done"
    units = space.zero_units(model)
    removed = {g.id: len(units.get(g.id, ())) for g in space.prunable_groups}
    return model, space, opt, removed


@pytest.mark.parametrize("kind", ["params", "units"])
def test_uniform_hesso_removes_the_same_count_per_layer_and_meets_its_target(kind):
    model, space, opt, removed = _run(kind)
    heads = {removed[f"layers.{i}.self_attn.q_proj"] for i in range(2)}
    neurons = {removed[f"layers.{i}.mlp.gate_proj"] for i in range(2)}
    assert len(heads) == 1 and len(neurons) == 1 and sum(removed.values()) > 0, removed
    if kind == "params":
        measured = 1 - count_params(otograph.compress(model, space)) / count_params(model)
        assert measured >= 0.3 and measured == pytest.approx(opt.metrics()["param_reduction"], abs=1e-9)
    else:
        assert sum(removed.values()) >= int(0.3 * sum(g.num_units for g in space.prunable_groups))


@pytest.mark.parametrize("kind", ["flops", "params"])
def test_uniform_units_reach_a_measured_target_with_rounded_widths(kind):
    """Every group keeps the same share, rounded to 8, and the compact model's measured cut (FLOPs by
    torch.utils.flop_counter, or parameters) is at least the target, within the rounding's step."""
    import torchvision

    import otograph
    from hesso.uniform import uniform_units
    from otograph.graph.cost import count_flops, count_params

    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    space = otograph.search_space(model, x)
    units = uniform_units(space, 0.5, kind, divisor=8)
    compact = otograph.compress(model, space, units)
    measured = (1 - count_flops(compact, x) / count_flops(model, x) if kind == "flops"
                else 1 - count_params(compact) / count_params(model))
    assert 0.5 <= measured <= 0.56, measured
    for g in space.prunable_groups:
        kept = g.num_units - len(units.get(g.id, []))
        assert kept % 8 == 0 or kept == g.num_units
    with pytest.raises(ValueError, match="cannot cut"):
        uniform_units(space, 1.0, kind, divisor=8)
    with pytest.raises(ValueError, match="kind must be 'flops' or 'params', not 'units'"):
        uniform_units(space, 0.5, "units")
