"""Per-unit saliency: the five HESSO criteria, vectorised over flattened unit rows.

A unit's row ``x_g`` is the concatenation of all its producer slices (weight rows, biases, norm
affine); ``d_g`` is the same slice of the base optimizer's search direction at that step
(``x ← x − lr·d``). Everything a criterion needs is three segment sums per unit, ``‖x_g‖²``,
``‖d_g‖²`` and ``⟨x_g, d_g⟩``, gathered with ``index_add_`` over the :class:`~hesso.units.Slot`
index vectors (a loop over tensors, never over groups).

The sums are measured *around* the base step (:class:`Probe`): ``‖x‖²`` before it, and the
direction afterwards, read from the state the step left (SGD's momentum buffer, Adam's moments),
so ``d`` is the very direction torch took and is never recomputed from scratch; ``⟨x, d⟩`` of the
pre-step ``x`` follows from ``x_before·(1 − lr·wd_decoupled) = x_after + lr·d``. Work is done in
chunks of rows, so the transient memory is bounded by :data:`CHUNK` elements, not by the model;
sharded parameters are read through their local shards and the ``(3, U+1)`` buffer is summed over
the ranks by the caller (one collective).

Examples
--------
>>> import torch
>>> xx, dd, xd = torch.tensor([4.0, 1.0]), torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0])
>>> c = criteria(xx, dd, xd, size=torch.tensor([2.0, 1.0]))
>>> [round(v, 3) for v in c["magnitude"].tolist()], [round(v, 3) for v in c["cosine_similarity"].tolist()]
([2.0, 1.0], [2.0, 1.0])
>>> s = combine(c)
>>> bool(s[0] > s[1])
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import torch

from hesso.distributed import local
from hesso.units import Slot

__all__ = ["CRITERIA", "DEFAULT_WEIGHTS", "CHUNK", "Probe", "criteria", "combine", "check_weights",
           "post_step_direction"]

#: The five criteria, in the order of the paper.
CRITERIA = ("magnitude", "avg_magnitude", "cosine_similarity", "taylor_first_order", "taylor_second_order")
#: Equal weights, as published.
DEFAULT_WEIGHTS: dict[str, float] = dict.fromkeys(CRITERIA, 0.2)
#: Elements per chunk of rows when measuring (bounds the temporaries to a few times this).
CHUNK = 1 << 22
_EPS = 1e-8


def check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """Validate an ``importance`` mapping (``None`` gives :data:`DEFAULT_WEIGHTS`)."""
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    unknown = set(weights) - set(CRITERIA)
    if unknown:
        raise ValueError(f"unknown saliency criteria {sorted(unknown)}; known: {', '.join(CRITERIA)}")
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"importance weights must be >= 0 with a positive sum, got {dict(weights)}")
    return {k: float(v) for k, v in weights.items()}


def criteria(xx: torch.Tensor, dd: torch.Tensor, xd: torch.Tensor, size: torch.Tensor) -> dict[str, torch.Tensor]:
    """The five raw criteria from the segment sums and the unit sizes (element counts)."""
    nx, nd = xx.clamp_min(0).sqrt(), dd.clamp_min(0).sqrt()
    return {
        "magnitude": nx,
        "avg_magnitude": nx / size.clamp_min(1),
        "cosine_similarity": xd / (nx + _EPS) / (nd + _EPS) + 1,
        "taylor_first_order": xd.abs(),
        "taylor_second_order": 0.5 * xd * xd,
    }


def combine(raw: Mapping[str, torch.Tensor], weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Weighted sum of the criteria, each first divided by its L2 norm over all units."""
    weights = check_weights(weights)
    total = None
    for name, w in weights.items():
        c = raw[name]
        term = c * (w / (c.norm().item() + _EPS))
        total = term if total is None else total + term
    return total


@torch.no_grad()
def post_step_direction(variant: str, group: Mapping, x: torch.Tensor, g: torch.Tensor,
                        state: Mapping[str, torch.Tensor], rows: slice | None = None,
                        ) -> tuple[torch.Tensor, float]:
    """``(d, c)`` for the base step just taken: ``x_before = c · (x + lr · d)`` (same math as ``torch.optim``).

    ``x``, ``g`` and the tensors of ``state`` are the (local) parameter after the step, its gradient
    and its optimizer state; ``rows`` restricts everything to a block of rows along dim 0. SGD:
    ``d`` is the momentum buffer (``(g + wd·x + momentum·buf) / (1 − lr·wd)`` with Nesterov, ``(g + wd·x) /
    (1 − lr·wd)`` without momentum); Adam/AdamW: ``m̂ / (√v̂ + eps)`` (``max_exp_avg_sq`` with amsgrad),
    with ``c = 1 / (1 − lr·wd)`` for decoupled weight decay.
    """
    def part(t: torch.Tensor) -> torch.Tensor:
        return local(t) if rows is None else local(t)[rows]

    lr, wd = float(group["lr"]), float(group.get("weight_decay", 0.0))
    if variant == "sgd":
        mom = float(group.get("momentum", 0.0))
        if mom and not group.get("nesterov", False):
            return part(state["momentum_buffer"]), 1.0
        gp = part(g)
        if not wd and not mom:
            return (-gp if group.get("maximize", False) else gp), 1.0
        d = -gp if group.get("maximize", False) else gp.clone()
        if wd:
            d.add_(part(x), alpha=wd)
        if mom:
            d.add_(part(state["momentum_buffer"]), alpha=mom)
        return (d.div_(1 - lr * wd) if wd else d), 1.0
    beta1, beta2 = (float(b) for b in group["betas"])
    step = float(state["step"])
    v = part(state["max_exp_avg_sq"] if group.get("amsgrad", False) else state["exp_avg_sq"])
    d = v.sqrt().div_(math.sqrt(1 - beta2 ** step)).add_(float(group.get("eps", 1e-8)))
    torch.div(part(state["exp_avg"]), d, out=d).div_(1 - beta1 ** step)
    decoupled = group.get("decoupled_weight_decay", variant == "adamw")
    return d, (1 / (1 - lr * wd) if decoupled and wd else 1.0)


def _chunks(t: torch.Tensor) -> Iterator[slice | None]:
    """Blocks of rows along dim 0 of ``t`` with at most :data:`CHUNK` elements each (None: all of it)."""
    if t.dim() < 2 or t.numel() <= CHUNK:
        yield None
        return
    step = max(1, CHUNK // max(1, t[0].numel()))
    for a in range(0, t.shape[0], step):
        yield slice(a, a + step)


def _work(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


class Probe:
    """Per-unit ``‖x‖²``, ``‖d‖²`` and ``⟨x, d⟩`` of one step, measured around the base step.

    Call :meth:`before` just before the base step and :meth:`after` just after it; the result is
    a ``(3, U+1)`` float64 buffer of *this rank's* partial sums (column ``U`` collects positions in
    no unit), on the device of the first slot.
    """

    def __init__(self, slots: Sequence[Slot], num_units: int):
        self.num_units = num_units
        self.by_tensor: dict[int, list[Slot]] = {}
        for s in slots:
            if s.counts:
                self.by_tensor.setdefault(id(s.tensor), []).append(s)
        self.device = local(slots[0].tensor).device if slots else torch.device("cpu")

    def _add(self, acc: torch.Tensor, row: int, s: Slot, block: slice | None,
             per_pos: torch.Tensor) -> None:
        index = s.index if block is None or s.axis != 0 else s.index[block]
        acc[row].index_add_(0, index.to(acc.device), per_pos.to(acc.device, torch.float64))

    @staticmethod
    def _per_pos(s: Slot, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        """Sum over every axis but the slot's of ``a*a`` (``b`` None) or ``a*b``."""
        if s.axis == 0 and a.dim() >= 1:
            ra = a.reshape(a.shape[0], -1)
            if b is None:
                return torch.linalg.vector_norm(ra, dim=1).square()
            return torch.linalg.vecdot(ra, b.reshape(b.shape[0], -1), dim=1)
        dims = tuple(i for i in range(a.dim()) if i != s.axis)
        if b is None:
            return torch.linalg.vector_norm(a, dim=dims).square() if dims else a.square()
        return (a * b).sum(dims) if dims else a * b

    @torch.no_grad()
    def before(self) -> torch.Tensor:
        """A fresh buffer with ``‖x‖²`` of the parameters as they are now (before the step)."""
        acc = torch.zeros(3, self.num_units + 1, dtype=torch.float64, device=self.device)
        for slots in self.by_tensor.values():
            x = local(slots[0].tensor)
            for block in _chunks(x):
                xb = _work(x if block is None else x[block])
                for s in slots:
                    self._add(acc, 0, s, block, self._per_pos(s, xb))
        return acc

    @torch.no_grad()
    def after(self, acc: torch.Tensor, variant: str, group_of: Mapping[int, Mapping],
              state: Mapping[torch.Tensor, Mapping]) -> torch.Tensor:
        """Add ``‖d‖²`` and ``⟨x_before, d⟩`` of the step just taken; a tensor without gradient adds 0."""
        for slots in self.by_tensor.values():
            p = slots[0].tensor
            if p.grad is None or id(p) not in group_of:
                continue
            x = local(p)
            for block in _chunks(x):
                d, c = post_step_direction(variant, group_of[id(p)], p, p.grad, state.get(p, {}), block)
                d = _work(d)
                xa = _work(x if block is None else x[block])
                lr = float(group_of[id(p)]["lr"])
                for s in slots:
                    dd = self._per_pos(s, d)
                    self._add(acc, 1, s, block, dd)
                    self._add(acc, 2, s, block, (self._per_pos(s, xa, d) + lr * dd) * c)
        return acc
