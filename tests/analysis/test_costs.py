"""The cost model predicts the compact model's parameters and FLOPs exactly, for any removed units."""

import pytest
import torch

import otograph
from otograph.graph.cost import count_flops, count_params
from otograph.testing import random_units
from otograph.testing.topologies import TRICKY


def check(model, x, frontend="fx", fractions=(0.3, 0.7), seed=0):
    model = model.eval()
    space = otograph.search_space(model, x, frontend=frontend)
    assert space.costs.total("params") == count_params(model)
    assert space.costs.total("flops") == count_flops(model, x) > 0
    for i, frac in enumerate(fractions):
        units = random_units(space, frac, torch.Generator().manual_seed(seed + i))
        compact = otograph.compress(model, space, units)
        assert space.costs.remaining("params", units) == pytest.approx(count_params(compact), abs=0.5)
        assert space.costs.remaining("flops", units) == pytest.approx(count_flops(compact, x), abs=0.5), units
    return space


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tiny_topologies(name):
    cls, make = TRICKY[name]
    torch.manual_seed(0)
    check(cls(), make())


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "regnet_x_400mf", "vit_b_32", "convnext_tiny",
                                  "shufflenet_v2_x0_5", "densenet121"])
def test_torchvision(name):
    tv = pytest.importorskip("torchvision")
    kw = {"image_size": 64} if name.startswith("vit") else {}
    check(tv.models.get_model(name, **kw), torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("name", ["llama", "qwen2", "gpt2", "bert"])
def test_transformers(name):
    pytest.importorskip("transformers")
    from otograph.testing.transformers import ids, small

    check(small(name), ids(name, 0), frontend="export")


def test_single_unit_savings_are_exact_and_not_summed_twice():
    """A weight between two shrinking groups: removing a unit of each saves less than the sum."""
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 2))
    space = check(net, torch.randn(3, 4))
    a, b = space.group("0"), space.group("2")
    both = space.costs.total("params") - space.costs.remaining("params", {"0": [0], "2": [0]})
    assert float(a.unit_params[0]) == 4 + 1 + 8  # its row and bias, and the next weight's column
    assert both == float(a.unit_params[0] + b.unit_params[0]) - 1  # the shared weight entry counted once
