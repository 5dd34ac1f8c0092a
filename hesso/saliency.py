"""Per-unit saliency: the five HESSO criteria, vectorised over flattened unit rows.

A unit's row ``x_g`` is the concatenation of all its producer slices (weight rows, biases, norm
affine); ``d_g`` is the same slice of the base optimizer's search direction. Everything a criterion
needs is three segment sums per unit, ``‖x_g‖²``, ``‖d_g‖²`` and ``⟨x_g, d_g⟩``, gathered with
``index_add_`` over the :class:`~hesso.units.Slot` index vectors (a loop over tensors, never over
groups).

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

from collections.abc import Mapping, Sequence

import torch

from hesso.units import Slot

__all__ = ["CRITERIA", "DEFAULT_WEIGHTS", "segment_sums", "criteria", "combine", "check_weights", "direction"]

#: The five criteria, in the order of the paper.
CRITERIA = ("magnitude", "avg_magnitude", "cosine_similarity", "taylor_first_order", "taylor_second_order")
#: Equal weights, as published.
DEFAULT_WEIGHTS: dict[str, float] = dict.fromkeys(CRITERIA, 0.2)
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


@torch.no_grad()
def segment_sums(slots: Sequence[Slot], directions: Mapping[int, torch.Tensor], num_units: int,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(‖x_g‖², ‖d_g‖², ⟨x_g, d_g⟩)`` for every unit, float64 on the CPU.

    ``directions`` maps ``id(tensor)`` to the direction of that tensor; a missing entry counts as
    a zero direction. Positions outside any unit land in a dummy slot that is dropped.
    """
    acc = torch.zeros(3, num_units + 1, dtype=torch.float64)
    for s in slots:
        x = s.rows(s.tensor.detach())
        d = directions.get(id(s.tensor))
        f64 = torch.float64
        xx = torch.linalg.vector_norm(x, 2, dim=1, dtype=f64).square()
        if d is None:
            per_pos = torch.stack([xx, torch.zeros_like(xx), torch.zeros_like(xx)]).cpu()
        else:
            d = s.rows(d.detach())
            dd = torch.linalg.vector_norm(d, 2, dim=1, dtype=f64).square()
            per_pos = torch.stack([xx, dd, (x * d).sum(1, dtype=f64)]).cpu()
        acc.index_add_(1, s.index.cpu(), per_pos)
    return acc[0, :num_units], acc[1, :num_units], acc[2, :num_units]


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
def direction(variant: str, group: Mapping, p: torch.Tensor, state: Mapping) -> torch.Tensor | None:
    """The base optimizer's search direction ``d`` for ``p`` at the coming step (``p ← p − lr·d``).

    Computed from ``p.grad`` and the state *before* the step, with the same formulas as
    ``torch.optim`` (SGD: weight decay, momentum, dampening, Nesterov; Adam/AdamW: bias-corrected
    ``m̂ / (√v̂ + eps)``, L2 decay folded into the gradient for Adam only). Not used for the update
    itself, only for saliency, so it need not match torch bit for bit.
    """
    if p.grad is None:
        return None
    g = p.grad.detach()
    if group.get("maximize", False):
        g = -g
    wd = group.get("weight_decay", 0.0)
    if variant == "sgd":
        if wd:
            g = g + wd * p.detach()
        mom = group.get("momentum", 0.0)
        if not mom:
            return g
        buf = state.get("momentum_buffer")
        buf = g.clone() if buf is None else buf * mom + g * (1 - group.get("dampening", 0.0))
        return g + mom * buf if group.get("nesterov", False) else buf
    if variant == "adam" and wd and not group.get("decoupled_weight_decay", False):
        g = g + wd * p.detach()
    beta1, beta2 = (float(b) for b in group["betas"])
    m, v = state.get("exp_avg"), state.get("exp_avg_sq")
    step = float(state["step"]) + 1 if "step" in state else 1.0
    m = (1 - beta1) * g if m is None else beta1 * m + (1 - beta1) * g
    v = (1 - beta2) * g * g if v is None else beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** step)
    v_hat = v / (1 - beta2 ** step)
    return m_hat / (v_hat.sqrt() + group.get("eps", 1e-8))
