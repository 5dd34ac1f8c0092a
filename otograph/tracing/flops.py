"""Counting FLOPs as ``torch.utils.flop_counter`` does, cheaply, during any pass of a model.

:class:`FlopCount` is a minimal dispatch mode over ``torch.utils.flop_counter``'s registered
formulas (``flop_registry``: matmuls, convolutions, attention kernels), plus the fused CPU
attention kernel that the registry misses (``_scaled_dot_product_flash_attention_for_cpu``, which
would otherwise count as zero on CPU while the math path on other devices counts its two matmuls).
Without the module tracking and decomposition attempts of ``FlopCounterMode`` it costs little more
than the pass itself, so shapes and FLOPs are recorded together.

Example:
    >>> import torch
    >>> with FlopCount() as c:
    ...     _ = torch.randn(4, 8) @ torch.randn(8, 3)
    >>> c.total
    192
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry, sdpa_flop_count

__all__ = ["FlopCount", "FLOP_FORMULAS"]


def _cpu_sdpa_flop(query, key, value, *args, out_val=None, **kwargs) -> int:
    return sdpa_flop_count(query.shape, key.shape, value.shape)


#: op packet → formula ``f(*args, out_val=…, **kwargs) -> int`` (flop_counter's, plus the CPU kernel)
FLOP_FORMULAS: dict[Any, Any] = dict(flop_registry)
_cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
if _cpu_sdpa is not None:
    FLOP_FORMULAS.setdefault(_cpu_sdpa, _cpu_sdpa_flop)


class FlopCount(TorchDispatchMode):
    """Adds the FLOPs of every op run inside the block to ``total``."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = FLOP_FORMULAS.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out
