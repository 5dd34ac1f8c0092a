"""Per-unit saliency: the five HESSO criteria, vectorised over flattened unit rows.

A unit's row ``x_g`` is the concatenation of all its producer slices (weight rows, biases, norm
affine); ``d_g`` is the same slice of the base optimizer's search direction at that step
(``x ← x − lr·d``). Everything a criterion needs is three segment sums per unit, ``‖x_g‖²``,
``‖d_g‖²`` and ``⟨x_g, d_g⟩``, gathered with ``index_add_`` over the :class:`~hesso.units.Slot`
index vectors (a loop over tensors, never over groups).

The sums are measured *after* the base step (:class:`Probe`), from the parameters it left and the
direction read from the optimizer state it left (SGD's momentum buffer, Adam's moments), so ``d``
is the very direction torch took and is never recomputed from the gradient; the pre-step ``x``
follows from ``x_before·(1 − lr·wd_decoupled) = x_after + lr·d``. Work is done in chunks of rows, so
the transient memory is bounded by :data:`CHUNK` elements, not by the model; sharded parameters
are read through their local shards and the ``(3, U+1)`` buffer is summed over the ranks by the
caller (one collective).

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


def post_step_direction(variant: str, group: Mapping, x: torch.Tensor, g: torch.Tensor,
                        state: Mapping[str, torch.Tensor], rows: slice | None = None,
                        ) -> tuple[torch.Tensor, float]:
    """``(d, c)`` for the base step just taken: ``x_before = c · (x + lr · d)`` (same math as ``torch.optim``).

    ``x``, ``g`` and the tensors of ``state`` are the (local) parameter after the step, its gradient
    and its optimizer state; ``rows`` restricts everything to a block of rows along dim 0. SGD:
    ``d`` is the momentum buffer (``(g + wd·x + momentum·buf) / (1 − lr·wd)`` with Nesterov, ``(g + wd·x) /
    (1 − lr·wd)`` without momentum); Adam/AdamW: ``m̂ / (√v̂ + eps)`` (``max_exp_avg_sq`` with amsgrad),
    with ``c = 1 / (1 − lr·wd)`` for decoupled weight decay. Call it without autograd (``torch.no_grad``).
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


def _sums(axis: int, x: torch.Tensor, d: torch.Tensor | None) -> torch.Tensor:
    """``(3, n)``: per position along ``axis``, ``‖x‖²``, ``‖d‖²`` and ``⟨x, d⟩`` (zeros without ``d``)."""
    if axis == 0:
        rx = x.reshape(x.shape[0], -1)
        xx = torch.linalg.vector_norm(rx, dim=1).square()
        if d is None:
            return torch.stack([xx, torch.zeros_like(xx), torch.zeros_like(xx)])
        rd = d.reshape(d.shape[0], -1)
        return torch.stack([xx, torch.linalg.vector_norm(rd, dim=1).square(), torch.linalg.vecdot(rx, rd, dim=1)])
    dims = tuple(i for i in range(x.dim()) if i != axis)
    xx = x.square().sum(dims)
    if d is None:
        return torch.stack([xx, torch.zeros_like(xx), torch.zeros_like(xx)])
    return torch.stack([xx, d.square().sum(dims), (x * d).sum(dims)])


class Probe:
    """Per-unit ``‖x‖²``, ``‖d‖²`` and ``⟨x, d⟩`` of the pre-step parameters and the step just taken.

    :meth:`measure` runs right after the base step and returns a ``(3, U+1)`` float64 buffer of
    *this rank's* partial sums (column ``U`` collects positions in no unit), on the device of the
    first slot. From the parameters ``x`` after the step and the direction ``d`` of
    :func:`post_step_direction` (``x_before = c·(x + lr·d)``), ``‖x_before‖² = c²(‖x‖² + 2·lr⟨x, d⟩ +
    lr²‖d‖²)`` and ``⟨x_before, d⟩ = c(⟨x, d⟩ + lr‖d‖²)``. One-dimensional tensors (biases, norm
    affine) are measured together, in one concatenation.
    """

    def __init__(self, slots: Sequence[Slot], num_units: int):
        self.num_units = num_units
        self.by_tensor: dict[int, list[Slot]] = {}
        for s in slots:
            if s.counts:
                self.by_tensor.setdefault(id(s.tensor), []).append(s)
        self.device = local(slots[0].tensor).device if slots else torch.device("cpu")
        flat = [ss[0] for ss in self.by_tensor.values() if ss[0].tensor.dim() == 1 and len(ss) == 1]
        self.flat = [s for s in flat if local(s.tensor).device == self.device]
        self.flat_index = torch.cat([s.index.to(self.device) for s in self.flat]) if self.flat else None
        flat_ids = {id(s.tensor) for s in self.flat}
        self.rest = [ss for key, ss in self.by_tensor.items() if key not in flat_ids]

    @torch.no_grad()
    def measure(self, variant: str, group_of: Mapping[int, Mapping],
                state: Mapping[torch.Tensor, Mapping]) -> torch.Tensor:
        """This rank's ``(3, U+1)`` sums ``‖x_before‖²``, ``‖d‖²``, ``⟨x_before, d⟩``; no gradient means ``d = 0``."""
        acc = torch.zeros(3, self.num_units + 1, dtype=torch.float64, device=self.device)

        def direction(p: torch.Tensor, block: slice | None) -> tuple[torch.Tensor | None, float, float]:
            if p.grad is None or id(p) not in group_of:
                return None, 1.0, 0.0
            d, c = post_step_direction(variant, group_of[id(p)], p, p.grad, state.get(p, {}), block)
            return _work(d), c, float(group_of[id(p)]["lr"])

        if self.flat:
            parts = [(local(s.tensor), *direction(s.tensor, None)) for s in self.flat]
            x = torch.cat([_work(t) for t, *_ in parts])
            d = torch.cat([dv if dv is not None else torch.zeros_like(_work(t)) for t, dv, _, _ in parts])
            sums, index = [torch.stack([x * x, d * d, x * d]).to(self.device)], [self.flat_index]
            segments = [(t.numel(), cv, lv) for t, _, cv, lv in parts]  # (positions, c, lr) of each piece
        else:
            sums, index, segments = [], [], []
        for slots in self.rest:
            p = slots[0].tensor
            x = local(p)
            for block in _chunks(x):
                d, c, lr = direction(p, block)
                xb = _work(x if block is None else x[block])
                for s in slots:
                    sums.append(_sums(s.axis, xb, d).to(self.device))
                    index.append(s.index if block is None or s.axis != 0 else s.index[block])
                    segments.append((sums[-1].shape[1], c, lr))
        if sums:  # x before the step from x after it, all positions at once
            xx, dd, xd = torch.cat(sums, 1).double()
            n, c, lr = (torch.tensor(v, dtype=torch.float64) for v in zip(*segments, strict=True))
            c, lr = (v.repeat_interleave(n.long()).to(self.device) for v in (c, lr))
            acc.index_add_(1, torch.cat(index).to(self.device),
                           torch.stack([(xx + 2 * lr * xd + lr * lr * dd) * c * c, dd, (xd + lr * dd) * c]))
        return acc
