"""Models and data that the CLI must refuse or report, named in specs as ``tests.cli.bad_inputs:NAME``."""

from __future__ import annotations

import torch

from otograph.testing.factories import TinyCNN


def nan_cnn():
    """A TinyCNN whose outputs are NaN."""
    net = TinyCNN()
    with torch.no_grad():
        net.fc.weight.fill_(float("nan"))
    return net, torch.randn(2, 1, 8, 8)


def exported_cnn():
    """TinyCNN as a torch.export program's module: eval-only, ``train()`` refuses."""
    net, x = TinyCNN().eval(), torch.randn(2, 1, 8, 8)
    return torch.export.export(net, (x,)).module(), x
