"""Exactness on models nobody here wrote: a fast torchvision subset (the full sweep is tools/zoo.py)."""

import pytest
import torch
import torchvision

import otograph
from otograph.testing import check_exact, expected_params

FAST = {  # name: (input size, constructor kwargs)
    "resnet18": (32, {}),
    "mobilenet_v3_small": (32, {}),
    "squeezenet1_1": (48, {}),
    "shufflenet_v2_x0_5": (32, {}),
    "regnet_y_400mf": (32, {}),
    "efficientnet_b0": (32, {}),
    "densenet121": (32, {}),
    "convnext_tiny": (32, {}),
    "vit_b_32": (32, {"image_size": 32}),
    "resnext50_32x4d": (32, {}),
    "googlenet": (64, {"aux_logits": False, "init_weights": False}),
}


@pytest.mark.parametrize("name", sorted(FAST))
def test_torchvision_exact(name):
    size, kw = FAST[name]
    model = torchvision.models.get_model(name, weights=None, **kw).eval()
    res = check_exact(model, torch.randn(1, 3, size, size), torch.randn(2, 3, size, size), fraction=0.3)
    v = res.verification
    assert len(res.units) >= 5
    assert v.max_ref > 1e-3, "outputs are trivially zero: the check would be vacuous"
    assert v.exact, f"max|Δ| = {v.max_abs}"
    assert v.params_after == res.expected_params < v.params_before
    assert v.flops_after < v.flops_before


@pytest.mark.parametrize("name,share", [("resnet50", 0.60), ("efficientnet_b0", 0.60), ("convnext_tiny", 0.40)])
def test_removed_share_at_half_of_every_group(name, share):
    model = torchvision.models.get_model(name, weights=None).eval()
    space = otograph.search_space(model, torch.randn(1, 3, 32, 32))
    units = {g.id: list(range(g.num_units // 2)) for g in space.prunable_groups if g.num_units >= 2}
    total = sum(p.numel() for p in model.parameters())
    assert 1 - expected_params(model, space, units) / total >= share
