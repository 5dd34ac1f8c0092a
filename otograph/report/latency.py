"""Measured CPU latency of a forward pass (eval mode, no autograd), median of timed runs.

Example:
    >>> import torch
    >>> ms = latency_ms(torch.nn.Linear(8, 4), torch.randn(1, 8), batch_size=4, budget_s=0.05)
    >>> ms > 0
    True
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from otograph.tracing.values import batch_like, eval_mode

__all__ = ["latency_ms"]


@torch.inference_mode()
def latency_ms(model: torch.nn.Module, example_inputs: Any, batch_size: int = 1, *, budget_s: float = 1.0,
               warmup: int = 3, max_runs: int = 200) -> float | None:
    """Median wall time of one forward pass in milliseconds, or None if the model rejects the batch size.

    Runs ``warmup`` untimed passes, then timed passes until ``budget_s`` seconds or ``max_runs``.
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
        while len(times) < max_runs and (len(times) < 5 or time.perf_counter() - start < budget_s):
            t0 = time.perf_counter()
            model(*args, **kwargs)
            times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)
