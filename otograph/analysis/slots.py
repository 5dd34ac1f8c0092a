"""Dimension slots of one tensor value.

A :class:`Slot` says, for every position of a tensor, which element (parameter slice) it belongs
to. ``ids`` has the tensor's rank; along an axis that carries no channel structure it has size 1
(broadcast). ``-1`` marks positions owned by no element (they are never removed). ``zero`` tells,
per position, whether the value there is exactly zero once the owning unit is zeroed.

``pax`` is set for values that are a parameter seen directly (``get_attr``), or through
elementwise ops and slices: one element array per axis, so a parameter joined with an activation
becomes a member of that activation's space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Slot", "compress", "varying_axes", "flatten_slots"]


@dataclass
class Slot:
    ids: np.ndarray | None = None
    zero: np.ndarray | None = None
    pax: tuple[np.ndarray | None, ...] | None = None
    pnames: tuple[str, ...] = ()  # parameter names behind ``pax`` (for messages)
    pzero: bool = True  # a parameter is zeroed with its unit; a buffer keeps its values
    positive: bool = False  # every value is > 0 whatever the units (clamp_min(eps)): a safe divisor

    def __post_init__(self) -> None:
        if self.ids is not None and self.zero is None:
            self.zero = np.zeros(self.ids.shape, dtype=bool)

    @property
    def active(self) -> bool:
        return self.ids is not None

    def zero_or(self, default: bool) -> np.ndarray:
        return self.zero if self.zero is not None else np.array(default)

    def moved(self, ids: np.ndarray, zero: np.ndarray) -> Slot:
        """The same values rearranged (a layout op): new ids and zeros, ``positive`` kept."""
        return Slot(ids, zero, positive=self.positive)


def varying_axes(ids: np.ndarray) -> list[int]:
    return [a for a in range(ids.ndim) if ids.shape[a] > 1]


def compress(ids: np.ndarray, zero: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shrink to size 1 every axis along which neither ``ids`` nor ``zero`` changes."""
    zero = np.broadcast_to(zero, ids.shape) if zero.shape != ids.shape else zero
    for a in range(ids.ndim):
        if ids.shape[a] > 1:
            first_i = np.take(ids, [0], axis=a)
            first_z = np.take(zero, [0], axis=a)
            if (ids == first_i).all() and (zero == first_z).all():
                ids, zero = first_i, first_z
    return np.ascontiguousarray(ids), np.ascontiguousarray(zero)



def flatten_slots(v: object) -> list[Slot]:
    """The slots of an analysis value: a Slot, or nested tuples/lists of them (tuple-valued ops)."""
    if isinstance(v, Slot):
        return [v]
    if isinstance(v, (tuple, list)):
        return [s for x in v for s in flatten_slots(x)]
    return []
