"""Regions pruned inside a model that cannot be traced whole (a detector in miniature)."""

import pytest
import torch
import torch.nn as nn

import otograph
from otograph.rewrite.regions import compress_regions, region_inputs, search_regions
from otograph.testing.detection import check_detector


class Head(nn.Module):
    """Takes a list of feature maps, as torchvision's detection heads do."""

    def __init__(self):
        super().__init__()
        self.conv, self.cls = nn.Conv2d(6, 8, 3, padding=1), nn.Conv2d(8, 2, 1)

    def forward(self, feats):
        return [self.cls(torch.relu(self.conv(f))) for f in feats]


class TinyDetector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.Conv2d(5, 6, 1))
        self.head = Head()

    def forward(self, images):
        f = self.backbone(torch.stack(images))
        scores = self.head([f, f[..., ::2, ::2]])[0].flatten(1)
        keep = scores[0] > scores[0].median()  # data-dependent: no tracer follows the shape
        return [{"boxes": torch.stack([s[keep]] * 4, 1), "scores": s[keep], "labels": torch.nonzero(keep).flatten()}
                for s in scores]


def images(seed, n=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, 8, 8, generator=g) for _ in range(n)]


def test_whole_model_does_not_trace_but_its_regions_do():
    model = TinyDetector().eval()
    with pytest.raises(otograph.TraceError):
        otograph.search_space(model, (images(0),), frontend="fx")
    got = region_inputs(model, (images(0),), ["backbone", "head"])
    assert got["backbone"][0].shape == (1, 3, 8, 8) and len(got["head"][0]) == 2
    spaces = search_regions(model, (images(0),), ["backbone", "head"], frontend="auto")
    # names are the region's own; the backbone's output crosses the border, so only its inner conv goes
    assert [g.id for g in spaces["backbone"].prunable_groups] == ["0"]
    assert [g.id for g in spaces["head"].prunable_groups] == ["conv"]


def test_compact_regions_put_back_give_the_same_detections():
    model = TinyDetector().eval()
    res = check_detector(model, images(0), [images(1), images(2)], regions=["backbone", "head"], frontend="auto")
    assert res.ok, res.detail
    assert res.detections > 0 and res.params_after < sum(p.numel() for p in model.parameters())
    assert set(res.units) == {"backbone", "head"} and set(res.units["backbone"]) == {"0"}
    assert set(res.units["head"]) == {"conv"}


def test_a_wrong_region_is_caught():
    model = TinyDetector().eval()
    spaces = search_regions(model, (images(0),), ["backbone"])
    wrong = compress_regions(model, spaces, {"backbone": {"0": [0, 1]}})  # not zero in model
    with torch.no_grad():
        a, b = model(images(1)), wrong(images(1))
    assert not torch.allclose(a[0]["scores"], b[0]["scores"]) or a[0]["labels"].shape != b[0]["labels"].shape
    assert isinstance(wrong.backbone, torch.fx.GraphModule) and model.backbone[0].out_channels == 5
    with pytest.raises(ValueError, match="inside"):
        search_regions(model, (images(0),), ["backbone", "backbone.0"])


def test_units_exactly_zero_in_the_model_go_when_none_are_given():
    model = TinyDetector().eval()
    spaces = search_regions(model, (images(0),), ["backbone", "head"])
    units = {"backbone": {"0": [1, 3]}, "head": {"conv": [0, 2, 5]}}
    for path, space in spaces.items():
        space.zero_(model.get_submodule(path), units[path])
    small = compress_regions(model, spaces)
    assert dict(small.backbone.named_parameters())["0.weight"].shape[0] == 3
    assert dict(small.head.named_parameters())["conv.weight"].shape[0] == 5  # exported: the list-taking head
    with torch.no_grad():
        a, b = model(images(3)), small(images(3))
    assert torch.equal(a[0]["labels"], b[0]["labels"])
    assert torch.allclose(a[0]["scores"], b[0]["scores"], atol=1e-6)
