"""Knowledge distillation while pruning: the starting model, frozen, teaches the one being pruned.

Usable in any training loop (plain, Hugging Face, Lightning): build a :class:`Teacher` from the
model before training starts, and add its loss to (or use it instead of) the task loss.

Example:
    >>> import torch
    >>> student = torch.nn.Linear(4, 3)
    >>> teacher = Teacher(student, temperature=2.0, alpha=0.5)   # a frozen copy of the start
    >>> x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    >>> loss = teacher.loss(student(x), teacher(x), y)
    >>> loss.backward()
    >>> all(p.grad is None for p in teacher.model.parameters()), student.weight.grad is not None
    (True, True)
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Teacher", "distillation_loss", "feature_loss"]


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      targets: torch.Tensor | None = None, *, temperature: float = 4.0,
                      alpha: float = 0.5) -> torch.Tensor:
    """``alpha · T² · KL(teacher ‖ student)`` at temperature ``T``, plus ``(1 - alpha) ·
    cross-entropy(student, targets)`` when ``targets`` are given (Hinton et al., 2015).

    Logits have classes in the last dimension (token logits of a language model work as they are).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    c = student_logits.shape[-1]
    s = F.log_softmax(student_logits.reshape(-1, c) / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.detach().reshape(-1, c) / temperature, dim=-1)
    kd = F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature ** 2
    if targets is None:
        return kd
    ce = F.cross_entropy(student_logits.reshape(-1, c), targets.reshape(-1))
    return alpha * kd + (1.0 - alpha) * ce


def feature_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    """Distance between representations (sentence embeddings, hidden states): ``"cosine"``
    (mean of 1 − cosine similarity over the last dimension) or ``"mse"``."""
    teacher = teacher.detach()
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(student, teacher, dim=-1)).mean()
    if kind == "mse":
        return F.mse_loss(student, teacher)
    raise ValueError(f"kind must be 'cosine' or 'mse', got {kind!r}")


class Teacher:
    """A frozen copy of a model (eval mode, no gradients) and the distillation loss.

    ``teacher(*inputs)`` returns its output without building a graph; ``loss(student_logits,
    teacher_logits, targets)`` is :func:`distillation_loss` with this teacher's temperature and
    ``alpha``. Pass ``copy=False`` to use ``model`` itself (it is then frozen in place).
    """

    def __init__(self, model: nn.Module, *, temperature: float = 4.0, alpha: float = 0.5, copy_model: bool = True):
        self.model = copy.deepcopy(model) if copy_model else model
        self.model.eval()
        self.model.requires_grad_(False)
        self.temperature, self.alpha = float(temperature), float(alpha)
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), temperature=self.temperature, alpha=self.alpha)

    @torch.no_grad()
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.model.eval()  # a training loop's model.train() must not reach the teacher
        return self.model(*args, **kwargs)

    def loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
             targets: torch.Tensor | None = None) -> torch.Tensor:
        return distillation_loss(student_logits, teacher_logits, targets, temperature=self.temperature,
                                 alpha=self.alpha)

    def __repr__(self) -> str:
        return f"Teacher({type(self.model).__name__}, T={self.temperature:g}, alpha={self.alpha:g})"
