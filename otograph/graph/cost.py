"""What a model costs: parameters and FLOPs (``torch.utils.flop_counter``), one place for both.

Used below the analysis (per-unit costs, totals) and by the reports and the CLI.

Example:
    >>> import torch
    >>> net = torch.nn.Linear(8, 4)
    >>> count_params(net), count_flops(net, torch.randn(2, 8))
    (36, 128)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_map

from otograph.tracing.flops import FlopCount
from otograph.tracing.values import eval_mode, fake_mode, fake_state, normalize_inputs

__all__ = ["count_params", "count_flops"]


def count_params(model: torch.nn.Module) -> int:
    """Number of parameter elements (tied parameters counted once)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: torch.nn.Module, example_inputs: Any) -> int:
    """FLOPs of one forward pass, eval mode, as ``torch.utils.flop_counter`` counts them (plus the
    fused CPU attention kernel it misses, see :mod:`otograph.tracing.flops`).

    Runs on fake tensors (shapes suffice) and with autograd enabled: fused inference fast paths
    (``nn.MultiheadAttention``'s) are not what training runs.
    """
    args, kwargs = normalize_inputs(example_inputs)
    try:  # on fake tensors (the model's too): FLOPs need shapes, not values
        with eval_mode(model), fake_mode() as mode, fake_state(model, mode), torch.enable_grad(), \
                FlopCount() as counter:
            fake = tree_map(lambda t: mode.from_tensor(t) if isinstance(t, torch.Tensor) else t, (args, kwargs))
            model(*fake[0], **fake[1])
    except Exception:  # noqa: BLE001 - ops that refuse fake tensors: count on the real ones
        with eval_mode(model), fake_state(model), torch.enable_grad(), FlopCount() as counter:
            model(*args, **kwargs)
    return counter.total
