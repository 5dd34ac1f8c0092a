"""Kill a run half-way, resume from a checkpoint, end bit-identical to the uninterrupted run."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from hesso import CRIC, HESSO
from otograph.testing.spaces import CNN, cnn_space

STEPS = 40


def data(k):
    g = torch.Generator().manual_seed(1000 + k)
    return torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 4, (8,), generator=g)


def make(variant, cric):
    torch.manual_seed(0)
    model = CNN()
    kw = dict(lr=0.05, momentum=0.9) if variant == "sgd" else dict(lr=1e-2, weight_decay=0.01)
    opt = HESSO(model, cnn_space(model), variant=variant, target_group_sparsity=0.5, start_pruning_step=4,
                pruning_steps=24, pruning_periods=2, cric=CRIC(max_cycles=2, cycle_steps=3) if cric else None,
                **kw)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS)
    return model, opt, sched


def run(model, opt, sched, ks):
    for k in ks:
        x, y = data(k)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()


@pytest.mark.parametrize("variant,cric,stop", [("sgd", False, 21), ("adamw", False, 9), ("adam", True, 6),
                                               ("sgd", True, 18)])
def test_resume_is_bit_identical(variant, cric, stop):
    model, opt, sched = make(variant, cric)
    run(model, opt, sched, range(STEPS))

    m1, o1, s1 = make(variant, cric)
    run(m1, o1, s1, range(stop))
    buf = io.BytesIO()
    torch.save({"model": m1.state_dict(), "opt": o1.state_dict(), "sched": s1.state_dict()}, buf)
    del m1, o1, s1
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    m2, o2, s2 = make(variant, cric)
    m2.load_state_dict(ckpt["model"])
    o2.load_state_dict(ckpt["opt"])
    s2.load_state_dict(ckpt["sched"])
    assert o2.metrics() == {**o2.metrics(), "step": stop}
    run(m2, o2, s2, range(stop, STEPS))

    for (n, a), b in zip(model.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), n
    assert opt.pruned_units == o2.pruned_units and opt.metrics() == o2.metrics()
    assert opt.metrics()["units_pruned"] == 7
    assert torch.equal(opt._scores, o2._scores)


def test_state_dict_rejects_other_space():
    model, opt, _ = make("sgd", False)
    sd = opt.state_dict()
    other = CNN(c1=3)
    opt2 = HESSO(other, cnn_space(other), lr=0.1)
    with pytest.raises(ValueError, match="units"):
        opt2.load_state_dict(sd)


def test_pruning_state_travels_apart_from_the_base_state(caplog):
    """As with torch.distributed.checkpoint, which keeps only ``state`` and ``param_groups``."""
    model, opt, sched = make("adamw", False)
    run(model, opt, sched, range(STEPS))

    m1, o1, s1 = make("adamw", False)
    run(m1, o1, s1, range(13))  # inside the first period: units are decaying
    base = {k: v for k, v in o1.state_dict().items() if k != "hesso"}
    buf = io.BytesIO()
    torch.save({"model": m1.state_dict(), "base": base, "sched": s1.state_dict(), "hesso": o1.pruning_state()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    m2, o2, s2 = make("adamw", False)
    m2.load_state_dict(ckpt["model"])
    with caplog.at_level("WARNING", logger="hesso.optimizer"):
        o2.load_state_dict(ckpt["base"])
    assert "load_pruning_state" in caplog.text and o2.metrics()["step"] == 0
    o2.load_pruning_state(ckpt["hesso"])
    s2.load_state_dict(ckpt["sched"])
    assert o2.metrics()["units_redundant"] > 0 and o2.metrics()["step"] == 13
    run(m2, o2, s2, range(13, STEPS))
    for (n, a), b in zip(model.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), n
    assert opt.pruned_units == o2.pruned_units and torch.equal(opt._scores, o2._scores)
