"""The numbers of one model for a before/after table: parameters, FLOPs, CPU latency, accuracy.

Example:
    >>> import torch
    >>> m = measure(torch.nn.Linear(8, 4), torch.randn(1, 8), batch_sizes=(1,), budget_s=0.01)
    >>> m.params, m.flops, list(m.latency_ms), m.latency_spread_ms["1"][0] <= m.latency_ms["1"]
    (36, 64, ['1'], True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from otograph.graph.cost import count_flops, count_params
from otograph.report.latency import time_forward

__all__ = ["Measurement", "measure"]


@dataclass
class Measurement:
    """Parameters, FLOPs for one sample, median latency (ms) per batch size and its spread (the 25th
    and 75th percentiles of the timed passes), and an accuracy (%)."""

    params: int
    flops: int
    latency_ms: dict[str, float | None] = field(default_factory=dict)  # keyed by batch size, as text
    accuracy: float | None = None
    latency_spread_ms: dict[str, list[float] | None] = field(default_factory=dict)  # [25th, 75th percentile]


def measure(model: torch.nn.Module, example_inputs: Any, *, batch_sizes: Iterable[int] = (1, 32),
            accuracy: float | None = None, budget_s: float = 1.0) -> Measurement:
    """Count ``model``'s parameters and FLOPs on ``example_inputs`` and time it at each batch size."""
    times = {str(b): time_forward(model, example_inputs, b, budget_s=budget_s) for b in batch_sizes}
    return Measurement(count_params(model), count_flops(model, example_inputs),
                       {b: t and t.median for b, t in times.items()}, accuracy,
                       {b: t and [t.low, t.high] for b, t in times.items()})
