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


def _random_set(n: int = 64):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)
    return torch.utils.data.TensorDataset(x, y)


class _Overstated:
    """A loader whose ``len`` promises twice the batches it yields."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return 2 * len(self.loader)

    def __iter__(self):
        return iter(self.loader)


def overstated_data(batch_size: int = 16):
    loader = torch.utils.data.DataLoader(_random_set(), batch_size=batch_size)
    return _Overstated(loader), loader
