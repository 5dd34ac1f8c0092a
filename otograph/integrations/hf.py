"""HESSO in the Hugging Face ``Trainer``: pass it as the optimizer, add :class:`HESSOCallback` for its progress.

    opt = HESSO(model, space, variant="adamw", lr=..., target_group_sparsity=0.5,
                start_pruning_step=..., pruning_steps=..., pruning_periods=...)
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      optimizers=(opt, None), callbacks=[HESSOCallback()])

The Trainer builds its learning-rate scheduler around HESSO (``args.lr_scheduler_type``), counts
optimizer steps as HESSO does (``gradient_accumulation_steps`` micro-batches make one step), and
saves and restores HESSO's whole state in its checkpoints (``optimizer.pt``), so
``trainer.train(resume_from_checkpoint=...)`` continues the pruning schedule bit for bit. The
Trainer clips gradients (``max_grad_norm``) before any callback can mask pruned units, so their
discarded gradients count in that norm; set ``max_grad_norm=0`` and clip yourself after
``opt.mask_pruned_grads()`` if that matters. See ``docs/scale.md``.
"""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback

from otograph.integrations import find_hesso, progress

__all__ = ["HESSOCallback"]

log = logging.getLogger(__name__)


class HESSOCallback(TrainerCallback):
    """Adds HESSO's progress (``hesso/units_pruned``, ``hesso/group_sparsity``, …) to every log entry.

    The entries go into ``trainer.state.log_history`` (so into ``trainer_state.json`` of each
    checkpoint) and to the callbacks after this one; the summary is logged when training ends.
    """

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        opt = find_hesso(kwargs.get("optimizer"))
        if opt is None or logs is None:
            return
        extra = progress(opt)
        logs.update(extra)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(extra)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        opt = find_hesso(kwargs.get("optimizer"))
        if opt is not None:
            log.info("%s", opt.summary())
