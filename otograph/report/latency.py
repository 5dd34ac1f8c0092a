"""Measured CPU latency of a forward pass (eval mode, no autograd): the median of timed passes and
its spread (25th to 75th percentile), so a difference smaller than the noise can be told apart.

Example:
    >>> import torch
    >>> t = time_forward(torch.nn.Linear(8, 4), torch.randn(1, 8), batch_size=4, budget_s=0.05)
    >>> t.runs >= 5 and 0 < t.low <= t.median <= t.high
    True
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from otograph.tracing.values import batch_like, eval_mode

__all__ = ["Latency", "time_forward", "latency_ms"]


@dataclass(frozen=True)
class Latency:
    """Wall time of one forward pass in milliseconds: the median and the 25th/75th percentiles of ``runs``."""

    median: float
    low: float
    high: float
    runs: int


@torch.inference_mode()
def time_forward(model: torch.nn.Module, example_inputs: Any, batch_size: int = 1, *, budget_s: float = 1.0,
                 warmup: int = 3, min_runs: int = 5, max_runs: int = 200) -> Latency | None:
    """Time forward passes at ``batch_size``, or None if the model rejects that batch size.

    Runs ``warmup`` untimed passes, then timed passes until ``budget_s`` seconds (at least ``min_runs``,
    at most ``max_runs``).
    """
    args, kwargs = batch_like(example_inputs, batch_size)
    with eval_mode(model):
        try:
            for _ in range(warmup):
                model(*args, **kwargs)
        except Exception:  # noqa: BLE001 - e.g. an exported model with a static batch size
            return None
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < budget_s):
            t0 = time.perf_counter()
            model(*args, **kwargs)
            times.append(1000.0 * (time.perf_counter() - t0))
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return Latency(statistics.median(times), q1, q3, len(times))


def latency_ms(model: torch.nn.Module, example_inputs: Any, batch_size: int = 1, *, budget_s: float = 1.0,
               warmup: int = 3, max_runs: int = 200) -> float | None:
    """The median of :func:`time_forward` in milliseconds, or None if the model rejects the batch size.

    >>> latency_ms(torch.nn.Linear(8, 4), torch.randn(1, 8), budget_s=0.01) > 0
    True
    """
    t = time_forward(model, example_inputs, batch_size, budget_s=budget_s, warmup=warmup, max_runs=max_runs)
    return None if t is None else t.median
