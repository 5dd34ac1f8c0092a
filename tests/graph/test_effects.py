"""In-place calls: recognised in every spelling, and kept by dead-code elimination."""

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from otograph.graph.effects import is_impure, mutated_operand


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.act, self.pure = nn.ReLU(inplace=True), nn.ReLU()

    def forward(self, x):
        y = x * 2
        y.add_(1.0)
        F.relu(y, inplace=True)
        self.act(y)
        z = self.pure(y) + y.sigmoid()
        return z


def test_in_place_calls_are_found_and_survive_dead_code_elimination():
    gm = fx.symbolic_trace(M())
    mods = dict(gm.named_modules())
    mutating = {n.name for n in gm.graph.nodes if mutated_operand(n, mods.get(n.target)) is not None}
    assert mutating == {"add_", "relu", "act"}
    gm.graph.eliminate_dead_code(is_impure_node=is_impure)
    assert {"add_", "relu", "act"} <= {n.name for n in gm.graph.nodes}
    x = torch.randn(3)
    assert torch.equal(gm(x), M()(x))
    plain = fx.symbolic_trace(M())
    plain.graph.eliminate_dead_code()  # what fx does on its own: the unassigned calls go
    assert "add_" not in {n.name for n in plain.graph.nodes}
