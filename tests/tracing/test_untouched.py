"""Tracing leaves the model exactly as it was: buffers updated in forward, modes, grad flags."""

import copy
import logging

import pytest
import torch

import otograph
from otograph.testing.topologies import BufferUpdates as Stateful


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_tracing_leaves_buffers_modes_and_flags_as_they_were(frontend, caplog):
    model = Stateful().train()
    model.d.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.WARNING):
        space = otograph.search_space(model, torch.randn(1, 3, 8, 8), frontend=frontend)
    assert space.prunable_groups
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(b.grad_fn is None and b.is_leaf for b in model.buffers())
    assert model.training and model.c.training  # its mode, although traced in eval mode
    assert not model.d.weight.requires_grad and model.c.weight.requires_grad
    copy.deepcopy(model)  # a buffer left attached to an autograd graph would refuse this
    compact = otograph.compress(model, space, {})
    assert "count" not in caplog.text  # both frontends record the updates: nothing to warn about
    model.eval(), compact.eval()  # (an export compact model is an inference model)
    x = torch.randn(1, 3, 8, 8)
    for _ in range(2):  # the compact model makes the same updates: the counter and the EMA
        torch.testing.assert_close(compact(x), model(x), rtol=0, atol=1e-6)
    assert float(compact.count) == float(model.count) == 2.0
    torch.testing.assert_close(compact.ema, model.ema, rtol=0, atol=1e-6)


def test_a_failed_trace_leaves_the_model_as_it_was():
    class Bad(Stateful):
        def forward(self, x):
            self.count += 1
            if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                return x
            return x

    model = Bad()
    with pytest.raises(otograph.TraceError):
        otograph.search_space(model, torch.randn(1, 3, 8, 8))
    assert float(model.count) == 0.0
