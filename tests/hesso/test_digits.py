"""Quality on real data: HESSO to >= 50% fewer FLOPs keeps the dense model's accuracy on digits."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

pytest.importorskip("sklearn")

import otograph  # noqa: E402
from hesso import HESSO  # noqa: E402
from otograph.cli.digits import digits_loaders  # noqa: E402
from otograph.cli.models import SmallResNet  # noqa: E402
from otograph.graph.cost import count_flops  # noqa: E402

EPOCHS, SEED = 10, 0
EXAMPLE = torch.zeros(2, 1, 8, 8)




def accuracy(model, loader) -> float:
    model.eval()
    right = total = 0
    with torch.no_grad():
        for x, y in loader:
            right += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return 100.0 * right / total


def train(pruning: dict | None):
    torch.manual_seed(SEED)
    train_loader, val_loader = digits_loaders(64, SEED)
    model = SmallResNet(num_classes=10)
    hp = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)
    space = None
    if pruning is None:
        opt = torch.optim.SGD(model.parameters(), **hp)
    else:
        space = otograph.search_space(model, EXAMPLE)
        n = len(train_loader)
        opt = HESSO(model, space, variant="sgd", **hp, start_pruning_step=n, pruning_steps=4 * n,
                    pruning_periods=4, **pruning)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS * len(train_loader))
    t0 = time.perf_counter()
    for _ in range(EPOCHS):
        model.train()
        for x, y in train_loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - t0
    return model, space, opt, accuracy(model, val_loader), val_loader, seconds


def test_hesso_halves_flops_within_accuracy_of_dense():
    _, _, _, dense, _, _ = train(None)
    results = {}
    for name, extra in {"hesso": {}, "hesso-cric": {"cric": True}}.items():
        model, space, opt, acc, val_loader, seconds = train({"target_flops_reduction": 0.6, **extra})
        compact = otograph.compress(model, space)
        reduction = 1 - count_flops(compact, EXAMPLE) / count_flops(model, EXAMPLE)
        results[name] = (acc, reduction, seconds)
        assert opt.metrics()["stage"] == "done" and opt.metrics()["flops_reduction"] >= 0.6
        assert reduction >= 0.5, name
        assert accuracy(compact, val_loader) == acc  # the compact model is the trained model
        assert acc >= dense - 1.5, (name, acc, dense)
    assert dense > 95.0
