"""Fine-tuning the compact model never silently differs from fine-tuning the original:
custom autograd functions keep their backward, no_grad regions stay, export compacts refuse .train()."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import otograph


class RoundSTE(torch.autograd.Function):
    """A straight-through estimator: round forward, identity backward (round's own gradient is 0)."""

    @staticmethod
    def forward(ctx, x):
        return x.round()

    @staticmethod
    def backward(ctx, g):
        return g


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1),
                                          nn.Conv2d(8, 4, 1))

    def forward(self, x):
        y = F.relu(self.a(x))
        with torch.no_grad():
            frozen = self.b(y)
        return self.d(RoundSTE.apply(self.c(y)) + frozen)


def grads(model, x):
    x = x.clone().requires_grad_(True)
    model.zero_grad()
    model(x).square().sum().backward()
    return x.grad, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def test_custom_autograd_function_and_no_grad_survive_compression():
    model = Net().double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    space = otograph.search_space(model, x)
    assert space.group("a").prunable
    assert "RoundSTE_apply" in space.group("c").reason  # kept whole, as one opaque call
    space.zero_(model, {"a": [1, 3]})
    compact = otograph.compress(model, space)
    gx, gp = grads(model, x)
    cx, cp = grads(compact, x)
    assert gx.abs().sum() > 0 and torch.allclose(gx, cx, rtol=0, atol=1e-12)
    assert "b.weight" not in gp and "b.weight" not in cp  # the no_grad block gets no gradient
    assert torch.allclose(gp["c.bias"], cp["c.bias"], rtol=0, atol=1e-12)  # through the STE
    with torch.no_grad():  # the compact model restores the grad mode it found, not the traced one
        assert not compact(x).requires_grad and not torch.is_grad_enabled()
    assert compact(x).requires_grad


def test_an_export_compact_model_refuses_training_mode():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5), nn.Conv2d(8, 4, 3))
    x = torch.randn(2, 3, 8, 8)
    space = otograph.search_space(net.eval(), x, frontend="export")
    compact = otograph.compress(net, space, {"0": [0]})
    compact.eval()  # fine: it is an inference model
    with pytest.raises(otograph.OtographError, match="eval mode") as e:
        compact.train()
    assert "frontend='fx'" in str(e.value)
    with pytest.raises(otograph.OtographError):
        nn.Sequential(compact).train()  # also as a child module
    fx_compact = otograph.compress(net, otograph.search_space(net.eval(), x), {"0": [0]})
    assert fx_compact.train().training  # the fx compact model trains like the original


def test_export_refuses_a_custom_autograd_function_it_would_inline():
    """torch.export traces through ``RoundSTE.forward``: its compact model would take round's zero
    gradient instead of the straight-through one, so the export frontend refuses and names the fix."""
    with pytest.raises(otograph.TraceError, match="RoundSTE") as e:
        otograph.search_space(Net().double(), torch.randn(2, 3, 8, 8, dtype=torch.float64), frontend="export")
    assert "frontend='fx'" in e.value.hint
    apply = torch.autograd.function.Function.__dict__["apply"]
    with pytest.raises(otograph.TraceError):
        otograph.search_space(Net(), torch.randn(2, 3, 8, 8), frontend="export")
    assert torch.autograd.function.Function.__dict__["apply"] is apply  # restored after the refusal


class ViewBeforeNoGrad(nn.Module):
    """``x.mT`` read before a no_grad block and first used inside it: fx adds an attribute's node
    lazily, at its first use, so the view ran with gradients off and the input got none (fuzz
    finding: input gradient off by 100 % with nothing removed)."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(3, 3)

    def forward(self, x):
        x = x.flatten(2).mT
        _ = x.device  # read and never used: leaves no node
        with torch.no_grad():
            g = torch.sigmoid(self.gate(x))
        return x * g


def test_an_attribute_read_before_no_grad_keeps_its_gradient():
    model, x = ViewBeforeNoGrad().double(), torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    space = otograph.search_space(model, x, frontend="fx")
    assert not any(n.target is getattr and n.args[1] == "device" for n in space.traced.gm.graph.nodes)
    compact = otograph.compress(model, space, {})
    (g_ref,) = torch.autograd.grad(model(x).sum(), x)
    (g_compact,) = torch.autograd.grad(compact(x).sum(), x)
    assert g_ref.abs().max() > 0.1
    torch.testing.assert_close(g_compact, g_ref, rtol=0, atol=1e-12)
