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


def add_into(x, y):  # wrapped for fx (as torchvision wraps MViT's _add_shortcut): one call in the graph
    x.add_(y)
    return x


fx.wrap("add_into")


class Shortcut(nn.Module):
    def forward(self, x):
        y = x * 2
        add_into(y, x)  # result unused: called for what it does to y
        unused = torch.sigmoid(x)  # noqa: F841 - a pure call fx may drop
        return y.relu()


def test_an_unused_call_of_a_wrapped_function_survives_dead_code_elimination():
    gm = fx.symbolic_trace(Shortcut())
    gm.graph.eliminate_dead_code(is_impure_node=is_impure)
    names = {n.name for n in gm.graph.nodes}
    assert "add_into" in names and "sigmoid" not in names
    gm.recompile()
    x = torch.randn(4)
    assert torch.equal(gm(x), Shortcut()(x)) and torch.equal(gm(x), (3 * x).relu())
