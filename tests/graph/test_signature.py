"""Arguments by schema name, for every spelling of an op (module, function, method, ATen)."""

import operator

import pytest
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from otograph.graph.signature import bind


class Spellings(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        a = self.conv(x)
        b = F.conv2d(x, self.conv.weight, None, 1, 0, 1, 1)
        c = a.view(2, -1) + torch.reshape(b, (2, -1))
        d = a.permute(0, 2, 3, 1) * torch.permute(b, (0, 2, 3, 1))
        e = torch.split(a, [1, 3], dim=1)[0] + a.split(2, 1)[1][:, :1]
        f = F.batch_norm(a, None, None, training=True, eps=1e-3)
        return c, d, e, f, a.sum(1, keepdim=True), x.where(x > 0, 0.0)


@pytest.fixture(scope="module")
def nodes():
    gm = fx.symbolic_trace(Spellings())
    mods = dict(gm.named_modules())
    return {n.name: (n, mods.get(n.target) if n.op == "call_module" else None) for n in gm.graph.nodes}


def b(nodes, name):
    return bind(*nodes[name])


def test_every_spelling_reads_the_same_names(nodes):
    assert b(nodes, "conv")["input"].name == "x"  # a module's forward signature
    assert b(nodes, "conv2d")["groups"] == 1 and b(nodes, "conv2d")["weight"].name == "conv_weight"
    assert b(nodes, "view")["size"] == (2, -1)  # separate positional sizes read as one tuple
    assert b(nodes, "reshape")["shape"] == (2, -1)
    assert b(nodes, "permute")["dims"] == (0, 2, 3, 1) and b(nodes, "permute_1")["dims"] == (0, 2, 3, 1)
    assert b(nodes, "split")["dim"] == 1 and b(nodes, "split_1")["dim"] == 1  # keyword and position
    assert b(nodes, "sum_1")["keepdim"] is True and b(nodes, "sum_1")["dim"] == 1
    bn = b(nodes, "batch_norm")
    assert bn["eps"] == 1e-3 and bn["weight"] is None and bn["momentum"] == 0.1  # a schema default


def test_a_method_reads_its_tensor_as_input(nodes):
    where = b(nodes, "where")  # x.where(cond, y): aten's schema is (condition, self, other)
    assert where["input"].name == "x" and where["condition"].name == "gt" and where["other"] == 0.0


def test_operators_have_names(nodes):
    add = b(nodes, "add")
    assert add["input"].name == "view" and add["other"].name == "reshape"
    node, _ = nodes["getitem"]
    assert node.target is operator.getitem and bind(node)["index"] == 0


def test_set_writes_back_where_the_call_holds_it(nodes):
    view, _ = nodes["view"]
    args = bind(view)
    copy = fx.Graph().create_node("call_method", "view", view.args, dict(view.kwargs))
    args.set(copy, "size", (2, 12))
    assert copy.args[1:] == (2, 12)  # still separate positional sizes
    split, _ = nodes["split"]
    copy = fx.Graph().create_node("call_function", split.target, split.args, dict(split.kwargs))
    bind(split).set(copy, "dim", 0)
    assert copy.kwargs["dim"] == 0 and copy.args == split.args


def test_aten_overloads_bind_by_their_schema():
    gm = torch.export.export(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten()), (torch.randn(1, 3, 4, 4),)).module()
    conv = next(n for n in gm.graph.nodes if n.target is torch.ops.aten.conv2d.default)
    args = bind(conv)
    assert args["weight"].op == "get_attr" and args["groups"] == 1 and not args.given("groups")
