"""otograph.drawing: colours per group, groups per node, collapsed module clusters, removed units."""

from __future__ import annotations

import itertools
import re

import pytest
import torch

import otograph
from otograph.drawing import auto_depth, draw, group_colors, has_dot, node_groups, render

needs_dot = pytest.mark.skipif(not has_dot(), reason="graphviz's dot is not installed")


@pytest.fixture(scope="module")
def small_space():
    from otograph.cli.models import SmallResNet

    return otograph.search_space(SmallResNet().eval(), torch.randn(2, 1, 8, 8))


def _rgb_distance(a: str, b: str) -> float:
    return sum((int(a[i:i + 2], 16) - int(b[i:i + 2], 16)) ** 2 for i in (1, 3, 5)) ** 0.5


def test_colours_are_stable_and_clearly_distinct_in_one_picture(small_space):
    ids = [g.id for g in small_space.groups]
    colours = group_colors(ids)
    assert colours == group_colors(ids)  # the same model, the same colours
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) and re.fullmatch(r"#[0-9a-f]{6}", fill) for c, fill in colours.values())
    closest = min(_rgb_distance(colours[a][0], colours[b][0]) for i, a in enumerate(ids) for b in ids[i + 1:])
    assert closest >= 80  # the hash colours had two purples 21 apart (layer1.conv1, layer2.conv2)
    src = draw(small_space).source
    for g in small_space.groups:  # every group is in the legend with its colour
        assert colours[g.id][0] in src and g.id in src


def test_many_groups_keep_neighbours_apart():
    ids = [f"g{i}" for i in range(40)]
    colours = group_colors(ids)
    assert len({c for c, _ in colours.values()}) == 40
    assert min(_rgb_distance(colours[a][0], colours[b][0]) for a, b in itertools.pairwise(ids)) >= 150


def test_node_groups_follow_the_residual_space(small_space):
    groups = {n.name: gs for n, gs in node_groups(small_space).items()}
    assert groups["stem_0"] == ("stem.0",)
    assert groups["add"] == ("stem.0",)  # layer1's output joins the stem's channels
    assert groups["layer1_conv1"] == ("layer1.conv1",)
    assert groups["fc"] == ("fc",)


def test_removed_units_are_shown(small_space):
    src = draw(small_space, removed={"layer2.conv1": list(range(20))}).source
    assert "32→12×4×4" in src  # the edge label shows channels before → after
    assert "12/32" in src  # the legend shows kept/total
    assert "20 units removed" in src


def test_resnet50_collapses_to_a_readable_depth():
    tv = pytest.importorskip("torchvision")
    space = otograph.search_space(tv.models.resnet50().eval(), torch.randn(1, 3, 32, 32))
    gm = space.traced.gm
    assert auto_depth(gm) == 2
    full, collapsed = draw(space, depth=3).source, draw(space).source
    boxes = len(re.findall(r"^\s+\"box_[^\"]+\" \[", collapsed, re.M))
    assert boxes == 16  # one box per bottleneck block
    assert collapsed.count(" -> ") < full.count(" -> ") / 3
    assert "cluster_layer3" in collapsed and "layer3.4" in collapsed
    # the blocks' inner groups are listed inside their box
    assert re.search(r"box_layer1\.0.*conv1: 64.*conv2: 64", collapsed, re.S)
    # every edge's two ends are drawn: a cluster whose parent holds no node of its own (layer1 around
    # layer1.0 at depth 3) is still nested into the picture, not dropped with its ops
    declared = set(re.findall(r"^\s+\"?([\w.]+)\"? \[", full, re.M))
    ends = {e for pair in re.findall(r"^\s+\"?([\w.]+)\"? -> \"?([\w.]+)\"?", full, re.M) for e in pair}
    assert ends and ends <= declared, sorted(ends - declared)[:5]
    assert "cluster_layer1.0" in full and "op_layer1_0_conv1" in full


def test_render_svg_and_png(small_space, tmp_path):
    r = render(small_space, tmp_path / "s.svg")
    assert r.rendered and (tmp_path / "s.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    r = render(small_space, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="unknown picture format"):
        render(small_space, tmp_path / "s.gif")
