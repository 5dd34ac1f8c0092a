"""The training loop of ``otograph prune``: cross-entropy (plus distillation from a frozen teacher with
``--distill``), cosine learning rate, a :class:`History`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hesso import Teacher
from otograph.cli.checks import batch_pair
from otograph.cli.specs import LoadedData
from otograph.errors import OtographError

__all__ = ["History", "TrainingError", "train", "evaluate", "base_optimizer", "batch_loss"]

_BASES = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


class TrainingError(OtographError):
    """Training could not go on or went wrong (a loss or an output that is not finite, no batches)."""


@dataclass
class History:
    """What the charts need: per-step loss and pruning progress, per-epoch validation accuracy.

    ``loss`` is what was minimised: the cross-entropy, plus the distillation term ``distill`` (the
    scaled KL divergence to the teacher, recorded separately) when there is a teacher.
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    distill: list[float] = field(default_factory=list)
    group_sparsity: list[float] = field(default_factory=list)
    flops_reduction: list[float] = field(default_factory=list)
    param_reduction: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)

    def add_step(self, loss: float, metrics: dict[str, Any] | None, distill: float | None = None) -> None:
        self.step.append(len(self.step) + 1)
        self.loss.append(loss)
        if distill is not None:
            self.distill.append(distill)
        if metrics is not None:
            self.group_sparsity.append(metrics["group_sparsity"])
            self.flops_reduction.append(metrics["flops_reduction"])
            self.param_reduction.append(metrics["param_reduction"])

    def add_eval(self, accuracy: float) -> None:
        self.eval_step.append(len(self.step))
        self.val_accuracy.append(accuracy)


def base_optimizer(model: nn.Module, name: str, hyper: dict[str, Any]) -> torch.optim.Optimizer:
    """``torch.optim`` SGD, Adam or AdamW over all of ``model``'s parameters."""
    return _BASES[name](model.parameters(), **hyper)


def evaluate(model: nn.Module, loader) -> float:
    """Top-1 accuracy in percent."""
    was = model.training
    model.eval()
    right = total = 0
    with torch.no_grad():
        for batch in loader:
            x, y = batch_pair(batch, "the validation data")
            right += int((model(x).argmax(1) == y).sum())
            total += len(y)
    model.train(was)
    return 100.0 * right / max(1, total)


def batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               teacher: Teacher | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The loss to minimise on one batch and its distillation term: cross-entropy, plus
    ``T² · KL(teacher ‖ student)`` at the teacher's temperature when a teacher is given."""
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y)
    if teacher is None:
        return loss, None
    kd = teacher.loss(logits, teacher(x))  # no targets: the distillation term alone
    return loss + kd, kd


def _step(model: nn.Module, opt: torch.optim.Optimizer, sched, x, y, where: str,
          teacher: Teacher | None) -> tuple[float, float | None]:
    opt.zero_grad()
    loss, kd = batch_loss(model, x, y, teacher)
    value = loss.item()
    if not math.isfinite(value):
        raise TrainingError(f"training diverged: the loss is {value} at {where}",
                            hint="train more gently: a smaller --lr (or check the data for NaN)")
    loss.backward()
    opt.step()
    sched.step()
    return value, None if kd is None else kd.item()


def train(model: nn.Module, opt: torch.optim.Optimizer, data: LoadedData, epochs: int, *,
          desc: str, progress: bool, metrics: Callable[[], dict] | None = None,
          teacher: Teacher | None = None) -> History:
    """Cross-entropy training (see :func:`batch_loss`) with a cosine learning rate; records a :class:`History`.

    ``metrics`` (HESSO's) is read after every step for the pruning progress. ``teacher`` (frozen, not
    in ``opt``) adds the distillation term.
    """
    from tqdm.auto import tqdm

    total = epochs * len(data.train)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, total))
    hist = History()
    with tqdm(total=total, desc=desc, unit="step", disable=not progress, dynamic_ncols=True, mininterval=0.5,
              leave=True) as bar:
        for epoch in range(epochs):
            model.train()
            post: dict[str, str] = {}
            for batch in data.train:
                x, y = batch_pair(batch, data.spec)
                loss, kd = _step(model, opt, sched, x, y, f"step {len(hist.step) + 1} of the {desc} run", teacher)
                m = metrics() if metrics is not None else None
                hist.add_step(loss, m, kd)
                post = {"loss": f"{loss:.3f}"}
                if m is not None:
                    post.update(stage=m["stage"], pruned=f"{m['group_sparsity']:.0%}")
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if not post:
                raise TrainingError(f"the training loader of --data {data.spec} yielded no batch in epoch {epoch + 1}")
            hist.add_eval(evaluate(model, data.val))
            bar.set_postfix({**post, "val_acc": f"{hist.val_accuracy[-1]:.1f}%"}, refresh=False)
    return hist
