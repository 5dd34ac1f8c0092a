"""Hand-built search spaces for small models (used until/besides ``otograph.search_space``)."""

from __future__ import annotations

import torch
from torch import nn

from otograph.analysis.space import BUFFER, CONSUMER, PRODUCER, Group, Member, SearchSpace


def member(param: str, axis: int, n: int, role: str, offset: int = 0, size: int | None = None) -> Member:
    pos = torch.arange(offset, offset + n)
    return Member(param, axis, pos, torch.arange(n), role, size if size is not None else n)


def channel_group(gid: str, n: int, producers, consumers=(), buffers=(), flops=None, params=None) -> Group:
    """A group of ``n`` channels: ``producers``/``consumers``/``buffers`` are ``(name, axis)`` pairs."""
    members = ([member(p, a, n, PRODUCER) for p, a in producers]
               + [member(p, a, n, CONSUMER) for p, a in consumers]
               + [member(p, a, n, BUFFER) for p, a in buffers])
    return Group(gid, n, tuple(members), True, None,
                 torch.full((n,), float(params if params is not None else 1)),
                 torch.full((n,), float(flops if flops is not None else 1)))


class MLP(nn.Module):
    def __init__(self, d_in=6, h1=8, h2=8, d_out=3):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(d_in, h1), nn.Linear(h1, h2), nn.Linear(h2, d_out)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def mlp_space(m: MLP) -> SearchSpace:
    h1, h2 = m.fc1.out_features, m.fc2.out_features
    d_in, d_out = m.fc1.in_features, m.fc3.out_features
    g1 = channel_group("fc1", h1, [("fc1.weight", 0), ("fc1.bias", 0)], [("fc2.weight", 1)],
                       params=d_in + 1 + h2, flops=2 * (d_in + h2))
    g2 = channel_group("fc2", h2, [("fc2.weight", 0), ("fc2.bias", 0)], [("fc3.weight", 1)],
                       params=h1 + 1 + d_out, flops=2 * (h1 + d_out))
    total = sum(p.numel() for p in m.parameters())
    flops = 2 * (d_in * h1 + h1 * h2 + h2 * d_out)
    return SearchSpace([g1, g2], total, flops)


class CNN(nn.Module):
    """conv-bn-relu x2, global pool, linear; 1x8x8 inputs."""

    def __init__(self, c1=6, c2=8, classes=4):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2)
        self.fc = nn.Linear(c2, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def cnn_space(m: CNN) -> SearchSpace:
    c1, c2 = m.conv1.out_channels, m.conv2.out_channels
    bn = ("running_mean", "running_var")
    g1 = channel_group("conv1", c1, [("conv1.weight", 0), ("conv1.bias", 0), ("bn1.weight", 0), ("bn1.bias", 0)],
                       [("conv2.weight", 1)], [(f"bn1.{b}", 0) for b in bn],
                       params=9 + 1 + 2 + 9 * c2, flops=64 * 2 * 9 * (1 + c2))
    g2 = channel_group("conv2", c2, [("conv2.weight", 0), ("conv2.bias", 0), ("bn2.weight", 0), ("bn2.bias", 0)],
                       [("fc.weight", 1)], [(f"bn2.{b}", 0) for b in bn],
                       params=9 * c1 + 1 + 2 + m.fc.out_features, flops=64 * 2 * 9 * c1 + 2 * m.fc.out_features)
    total = sum(p.numel() for p in m.parameters())
    return SearchSpace([g1, g2], total, 64 * 2 * 9 * (c1 + c1 * c2) + 2 * c2 * m.fc.out_features)
