"""Trainer glue for HESSO: small callbacks for the Hugging Face ``Trainer`` and Lightning.

Nothing in ``otograph`` or ``hesso`` imports this package, and importing it loads neither
framework: import the submodule you need (``otograph.integrations.hf`` needs ``transformers``,
``otograph.integrations.lightning`` needs ``lightning``). HESSO needs no glue to run in either
trainer (it is a ``torch.optim.Optimizer``); the callbacks add its progress to the logs and, in
Lightning, keep pruned units' gradients out of gradient clipping. Recipes: ``docs/scale.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["find_hesso", "progress"]

#: the numeric entries of ``HESSO.metrics()`` reported to trainers' logs
PROGRESS_KEYS = ("units_pruned", "units_redundant", "group_sparsity", "flops_reduction", "param_reduction")


def find_hesso(optimizer: Any) -> Any:
    """The :class:`hesso.HESSO` inside a trainer's optimizer wrapper (or itself), else None.

    >>> find_hesso(object()) is None
    True
    """
    from hesso import HESSO

    seen = 0
    while optimizer is not None and seen < 8:
        if isinstance(optimizer, HESSO):
            return optimizer
        optimizer = getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)
        seen += 1
    return None


def progress(opt: Any, prefix: str = "hesso/") -> dict[str, float]:
    """HESSO's progress as flat numbers for a logger: ``{prefix + key: value}`` over :data:`PROGRESS_KEYS`."""
    m = opt.metrics()
    return {prefix + k: float(m[k]) for k in PROGRESS_KEYS}
