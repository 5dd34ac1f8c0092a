"""Models and data factories that the CLI tests name as ``otograph.testing.factories:NAME`` specs."""

from __future__ import annotations

import time

import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.fc = nn.Linear(12, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


def tiny_cnn(num_classes: int = 10):
    """A factory returning (module, example inputs)."""
    return TinyCNN(num_classes), torch.randn(2, 1, 8, 8)


def tiny_cnn_module(width: int = 8):
    """A factory returning only the module: the CLI needs --input-shape."""
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.Conv2d(width, 4, 3))


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        y = self.conv(x)
        if y.sum() > 0:  # data-dependent control flow: torch.fx cannot follow it
            return y
        return -y


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 1)
        self.block = _Branchy()
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


def untraceable():
    return Untraceable(), torch.randn(1, 3, 16, 16)


class WithCumsum(nn.Module):
    """``torch.cumsum`` over channels has no otograph rule: the space it touches is unprunable."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3)
        self.b = nn.Conv2d(8, 8, 3)
        self.c = nn.Conv2d(8, 4, 3)

    def forward(self, x):
        y = torch.cumsum(self.a(x), 1)
        return self.c(self.b(y).relu())


def with_cumsum():
    return WithCumsum(), torch.randn(1, 3, 16, 16)


def _digits(batch_size):
    from otograph.cli.digits import digits_loaders

    return digits_loaders(batch_size, 0)


class _Interrupting:
    """A loader that raises KeyboardInterrupt (as Ctrl-C does) after ``after`` batches."""

    def __init__(self, loader, after: int):
        self.loader, self.after = loader, after

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == self.after:
                raise KeyboardInterrupt
            yield batch


def interrupting_data(batch_size: int = 64):
    train, val = _digits(batch_size)
    return _Interrupting(train, 3), val


class _Slow(_Interrupting):
    def __iter__(self):
        for batch in self.loader:
            time.sleep(0.05)
            yield batch


def slow_data(batch_size: int = 64):
    train, val = _digits(batch_size)
    return _Slow(train, 0), val


def random_data(batch_size: int = 16):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    ds = torch.utils.data.TensorDataset(x, y)
    return (torch.utils.data.DataLoader(ds, batch_size=batch_size),
            torch.utils.data.DataLoader(ds, batch_size=batch_size))


class NestedUntraceable(nn.Module):
    """The submodule that fx cannot trace sits at ``body.1``."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 3, 1), _Branchy())
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.head(self.body(x))


def nested_untraceable():
    return NestedUntraceable(), torch.randn(1, 3, 16, 16)


def token_data(batch_size: int = 8, vocab: int = 61, seq: int = 8):
    """Next-token pairs ``(ids, ids shifted by one)`` of a counting language (each token is the last
    plus one, modulo ``vocab``), for ``otograph prune hf:PATH``: 32 training and 8 validation rows."""
    g = torch.Generator().manual_seed(0)
    start = torch.randint(0, vocab, (40, 1), generator=g)
    ids = (start + torch.arange(seq + 1)) % vocab
    train, val = torch.utils.data.TensorDataset(ids[:32, :-1], ids[:32, 1:]), torch.utils.data.TensorDataset(
        ids[32:, :-1], ids[32:, 1:])
    return (torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, generator=g),
            torch.utils.data.DataLoader(val, batch_size=batch_size))
