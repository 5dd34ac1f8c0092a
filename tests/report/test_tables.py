"""Reports of a search space: the table and the JSON agree with the space."""

import json

import torch
import torch.nn as nn

import otograph
from otograph.report.tables import space_json, space_table


def test_table_and_json_describe_every_group():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 6, 3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(6 * 4 * 4, 2)).eval()
    space = otograph.search_space(net, torch.randn(1, 3, 8, 8))
    text, data = space_table(space), space_json(space)
    json.dumps(data)  # plain data
    assert [g["id"] for g in data["groups"]] == [g.id for g in space.groups]
    for g in space.groups:
        assert g.id in text
    assert data["totals"]["params"] == sum(p.numel() for p in net.parameters())
    unprunable = [g for g in data["groups"] if not g["prunable"]]
    assert unprunable and all(g["reason"] for g in unprunable)
    assert "reaches the model output" in text


def test_long_reasons_are_cut_at_a_word_and_flops_name_their_batch():
    import dataclasses

    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 6, 3)).eval()
    space = otograph.search_space(net, torch.randn(2, 3, 8, 8))
    long = "touches the unsupported op torch.ops.mylib.very_long_custom_kernel_name (custom)"
    space.groups = [g if g.prunable else dataclasses.replace(g, reason=long) for g in space.groups]
    text = space_table(space)
    row = next(line for line in text.splitlines() if "touches" in line)
    assert "no: touches the unsupported op…" in row and "very_long" not in row
    assert "long cells are shortened at a word; --json has them in full" in text
    assert f"{space.total_flops:,} FLOPs (and FLOPs/unit) for the example input, a batch of 2" in text
    data = space_json(space)
    assert data["totals"]["flops_batch"] == 2 and [g["reason"] for g in data["groups"] if not g["prunable"]] == [long]
