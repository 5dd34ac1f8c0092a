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


class _DictLoader:
    """Batches as dicts, as Hugging Face data collators make them."""

    def __init__(self, n: int = 2):
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            yield {"input_ids": torch.randint(0, 10, (4, 6)), "labels": torch.randint(0, 10, (4,))}


def dict_data(batch_size: int = 4):
    return _DictLoader(), _DictLoader()


def empty_data(batch_size: int = 16):
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 1, 8, 8),
                                                                       torch.zeros(0, dtype=torch.long)))
    return empty, torch.utils.data.DataLoader(_random_set(), batch_size=batch_size)


class _Keywords(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 8)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, input_ids):
        return self.fc(self.emb(input_ids).mean(1))


def keyword_model():
    """A model traced with keyword inputs, as transformers models are."""
    return _Keywords(), {"input_ids": torch.randint(0, 10, (2, 6))}


class _ShapeBranch(torch.nn.Module):
    """Python control flow on a shape: torch.fx cannot follow it, torch.export specialises it."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        if x.shape[-1] > 4:
            x = torch.relu(self.conv(x))
        return self.fc(x.mean((2, 3)))


def shape_branch():
    return _ShapeBranch(), torch.randn(2, 1, 8, 8)
