"""HESSO in Lightning: return it from ``configure_optimizers``; :class:`HESSOCallback` logs and masks.

    class Module(L.LightningModule):
        def configure_optimizers(self):
            return HESSO(self.net, self.space, variant="sgd", lr=..., target_group_sparsity=0.5,
                         start_pruning_step=..., pruning_steps=..., pruning_periods=...)

    L.Trainer(..., callbacks=[HESSOCallback()]).fit(Module(), loader)

Lightning calls ``optimizer.step(closure)``, which HESSO supports; it counts optimizer steps
(``accumulate_grad_batches`` batches make one); its checkpoints hold HESSO's whole state, so
``fit(..., ckpt_path=...)`` continues the pruning schedule bit for bit. The callback masks pruned
units' gradients in ``on_before_optimizer_step``, which Lightning runs before it clips gradients
(``gradient_clip_val``), so the clipping norm leaves them out. See ``docs/scale.md``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

from otograph.integrations import find_hesso, progress

__all__ = ["HESSOCallback"]


class HESSOCallback(pl.Callback):
    """Masks pruned units' gradients before clipping and logs HESSO's progress every ``log_every`` steps."""

    def __init__(self, log_every: int = 1):
        self.log_every = log_every

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        opt = find_hesso(optimizer)
        if opt is not None:
            opt.mask_pruned_grads()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step % self.log_every:
            return
        for optimizer in trainer.optimizers:
            opt = find_hesso(optimizer)
            if opt is not None:
                pl_module.log_dict(progress(opt), on_step=True, on_epoch=False)
