"""compress(..., inplace=True): the user's own module made smaller, checked, or refused and untouched."""

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import otograph
from otograph.rewrite.attributes import ATTRIBUTE_RULES, qualname
from otograph.testing.exact import random_units
from otograph.testing.topologies import HandAttention, cbr


def _state(model):
    """Everything in-place shrinking may change: tensors (values, shapes, identities) and attributes."""
    tensors = {k: (id(v), v.detach().clone()) for k, v in model.state_dict(keep_vars=True).items()}
    attrs = {n: {k: v for k, v in vars(m).items() if not k.startswith("_")} for n, m in model.named_modules()}
    return tensors, attrs


def _same_state(a, b):
    (ta, aa), (tb, ab) = a, b
    return (ta.keys() == tb.keys() and all(ta[k][0] == tb[k][0] and torch.equal(ta[k][1], tb[k][1]) for k in ta)
            and aa == ab)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = cbr(3, 8), cbr(8, 12, groups=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        return self.fc(self.pool(self.b(self.a(x))).flatten(1))


def test_inplace_is_the_same_object_smaller_and_exact_at_other_shapes():
    model = Net().double().eval()
    space = otograph.search_space(model, torch.randn(2, 3, 16, 16, dtype=torch.float64))
    units = {"a.0": [1], "b.0": [0, 2]}  # a position inside every conv group of b, on each side
    ref = copy.deepcopy(model)
    space.zero_(ref, units)
    out = otograph.compress(model, space, units, inplace=True)
    assert out is model and type(model) is Net
    assert (model.a[0].out_channels, model.a[1].num_features, model.b[0].in_channels) == (4, 4, 4)
    assert (model.b[0].out_channels, model.b[0].groups, model.fc.in_features) == (4, 4, 4)
    assert model.a[0].weight.shape == (4, 3, 3, 3) and model.b[0].weight.shape == (4, 1, 3, 3)
    for shape in [(2, 3, 16, 16), (5, 3, 23, 11)]:
        x = torch.randn(shape, dtype=torch.float64)
        y = ref(x)
        assert float((model(x) - y).detach().abs().max()) <= 1e-9 * max(1.0, float(y.detach().abs().max()))


def test_inplace_from_the_exact_zeros_keeps_tied_weights_tied():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 6)
            self.up, self.down = nn.Linear(6, 16), nn.Linear(16, 6)
            self.out = nn.Linear(6, 10, bias=False)
            self.out.weight = self.emb.weight

        def forward(self, ids):
            return self.out(self.down(torch.relu(self.up(self.emb(ids)))))

    model = Tied().double().eval()
    space = otograph.search_space(model, torch.randint(0, 10, (2, 5)))
    space.zero_(model, {"up": [2, 3, 9]})
    before = model(torch.arange(10)[None])
    otograph.compress(model, space, inplace=True)  # units: the exactly zero ones
    assert model.up.out_features == 13 and model.out.weight is model.emb.weight
    assert torch.allclose(model(torch.arange(10)[None]), before, rtol=0, atol=1e-12)


class StaleHeads(HandAttention):
    """``HandAttention`` keeps its head count in ``self.h`` and reshapes with it."""


def _hand(cls=HandAttention):
    torch.manual_seed(0)
    model = cls().double().eval()
    x = torch.randn(2, 5, 24, dtype=torch.float64)
    space = otograph.search_space(model, x)
    return model, space, random_units(space, 0.3, torch.Generator().manual_seed(0))


def test_a_stale_head_count_is_refused_with_its_attribute_and_line_and_nothing_changes():
    model, space, units = _hand(StaleHeads)
    assert any(len(u) for u in units.values())
    before = _state(model)
    with pytest.raises(otograph.ShrinkError) as info:
        otograph.compress(model, space, units, inplace=True)
    e = info.value
    assert e.module == "" and e.op == "StaleHeads" and e.attribute == "h"
    assert e.line is not None and e.line.endswith(str(HandAttention.forward.__code__.co_firstlineno + 2))
    assert "self.h, self.dh" in str(e) and "h = 4 (qkv.weight axis 0 went from 72 to" in str(e)
    assert "register_resize(StaleHeads" in e.hint
    assert _same_state(before, _state(model))  # the same tensors, values and attributes


class SilentHeads(nn.Module):
    """Reshapes with ``-1`` for the head size: a stale head count silently computes something else."""

    def __init__(self, d=24, heads=4):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = (f(x).view(B, N, self.heads, -1).transpose(1, 2) for f in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(6))
        return self.o(y.transpose(1, 2).reshape(B, N, -1))


def test_a_silent_difference_names_the_module_and_what_to_register(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 24), SilentHeads()).double().eval()
    x = torch.randn(2, 5, 24, dtype=torch.float64)
    space = otograph.search_space(model, x)
    heads = next(g for g in space.prunable_groups if g.num_units == 4)
    units = {heads.id: [1, 2]}  # 12 features left: 4 heads of 3 instead of 2 heads of 6, no error
    before = _state(model)
    with pytest.raises(otograph.ShrinkError, match="computes something else") as info:
        otograph.compress(model, space, units, inplace=True)
    assert (info.value.module, info.value.op, info.value.attribute) == ("1", "SilentHeads", "heads")
    assert _same_state(before, _state(model))
    # the rule it asks for makes it work
    monkeypatch.setitem(ATTRIBUTE_RULES.rules, qualname(SilentHeads),
                        lambda m: setattr(m, "heads", m.q.out_features // 6))
    ref = copy.deepcopy(model)
    space.zero_(ref, units)
    assert otograph.compress(model, space, units, inplace=True) is model and model[1].heads == 2
    y = ref(x)
    assert float((model(x) - y).detach().abs().max()) <= 1e-9 * max(1.0, float(y.detach().abs().max()))


def test_multihead_attention_with_fewer_heads_is_refused_before_any_run():
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            return self.fc(self.attn(x, x, x, need_weights=False)[0])

    model = Block().double().eval()
    space = otograph.search_space(model, torch.randn(2, 5, 16, dtype=torch.float64))
    before = _state(model)
    with pytest.raises(otograph.ShrinkError, match="num_heads·head_dim = embed_dim") as info:
        otograph.compress(model, space, {"attn": [0]}, inplace=True)
    assert info.value.module == "attn" and "compress(model, space, units)" in info.value.hint
    assert _same_state(before, _state(model))


def test_a_size_written_in_the_code_is_named_by_its_line():
    class Literal(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.fc = nn.Linear(4, 8), nn.Linear(8 * 3, 2)

        def forward(self, x):
            return self.fc(torch.relu(self.a(x)).reshape(-1, 24))  # three tokens of 8 features per row

    model = Literal().double().eval()
    space = otograph.search_space(model, torch.randn(2, 3, 4, dtype=torch.float64))
    before = _state(model)
    with pytest.raises(otograph.ShrinkError) as info:
        otograph.compress(model, space, {"a": [0]}, inplace=True)
    e = info.value
    assert e.module == "" and e.attribute is None and "reshape(-1, 24)" in str(e)
    assert e.line.endswith(str(Literal.forward.__code__.co_firstlineno + 1))
    assert _same_state(before, _state(model))


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "efficientnet_b0", "regnet_y_400mf", "swin_t"])
def test_torchvision_classifiers_shrink_in_place_exactly(name):
    """The README's list: a third of every group's units removed, the user's own class kept."""
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.get_model(name, num_classes=10).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    space = otograph.search_space(model, x)
    units = random_units(space, 1 / 3, torch.Generator().manual_seed(0))
    ref = copy.deepcopy(model)
    space.zero_(ref, units)
    out = otograph.compress(model, space, units, inplace=True)
    assert out is model and type(model) is type(ref) and sum(map(len, units.values())) > 0
    v = otograph.verify(ref, model, x)
    assert v.params_after < v.params_before and v.max_abs <= 1e-12 * max(1.0, float(ref(x).detach().abs().max()))


def test_shufflenet_is_refused_in_place_and_left_as_it_was():
    """Its forward chunks the channels in half, a size in the code that slicing cannot change."""
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.shufflenet_v2_x0_5(num_classes=10).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    space = otograph.search_space(model, x)
    units = random_units(space, 1 / 3, torch.Generator().manual_seed(0))
    before = _state(model)
    with pytest.raises(otograph.ShrinkError, match="fails on the example inputs"):
        otograph.compress(model, space, units, inplace=True)
    assert _same_state(before, _state(model))
