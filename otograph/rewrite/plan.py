"""The plan: which positions every parameter and every value keeps. Pure data, no graph edits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx

from otograph.analysis.slots import Slot, flatten_slots
from otograph.analysis.space import SearchSpace

__all__ = ["Plan", "make_plan", "take"]


@dataclass
class Plan:
    """Kept indices per ``(param, axis)`` and kept-position masks per value axis."""

    params: dict[tuple[str, int], np.ndarray]          # only axes that shrink
    values: dict[fx.Node, list[dict[int, np.ndarray]]]  # per output slot: axis -> keep mask
    removed: dict[str, list[int]]
    param_values: frozenset = frozenset()  # values that are parameters seen directly (sliced in place)

    def keep(self, node: fx.Node, i: int = 0) -> dict[int, np.ndarray]:
        v = self.values.get(node)
        return v[i] if v and i < len(v) else {}

    def new_shape(self, node: fx.Node, shape: tuple[int, ...], i: int = 0) -> tuple[int, ...]:
        k = self.keep(node, i)
        return tuple(int(k[a].sum()) if a in k else n for a, n in enumerate(shape))


def _value_keep(s: Slot, gone: np.ndarray) -> dict[int, np.ndarray]:
    if s.pax is not None:
        return {a: ~gone[p] for a, p in enumerate(s.pax) if p is not None and gone[p].any()}
    if s.ids is None:
        return {}
    g = np.where(s.ids >= 0, gone[np.maximum(s.ids, 0)], False)
    out = {}
    for a in range(s.ids.ndim):
        if s.ids.shape[a] > 1:
            keep = ~np.moveaxis(g, a, 0).reshape(s.ids.shape[a], -1).all(1)
            if not keep.all():
                out[a] = keep
    return out


def make_plan(space: SearchSpace, units: Mapping[str, Iterable[int]]) -> Plan:
    res = space.analysis
    removed: dict[str, list[int]] = {}
    comps = []
    for gid, us in space.check_units(units).items():
        removed[gid] = us
        comps.extend(res.unit_comp[(gid, u)] for u in us)
    gone = res.removed_mask(np.asarray(comps, np.int64)) if comps else np.zeros(res.labels.shape, bool)
    params = {}
    for (name, axis), e in res.analysis.table.entries.items():
        keep = ~gone[e.ids]
        if not keep.all():
            params[(name, axis)] = np.nonzero(keep)[0]
    values = {}
    for node, v in res.analysis.slots.items():
        ks = [_value_keep(s, gone) for s in flatten_slots(v)]
        if any(ks):
            values[node] = ks
    pvals = frozenset(n for n, s in res.analysis.slots.items() if isinstance(s, Slot) and s.pax is not None)
    return Plan(params, values, removed, pvals)


def take(t: torch.Tensor, cuts: Iterable[tuple[int, np.ndarray]]) -> torch.Tensor:
    """A new tensor holding ``t``'s kept positions along each ``(axis, keep)`` of ``cuts``, in ``t``'s
    memory format: a channels-last conv weight stays channels-last (``index_select`` alone returns a
    contiguous tensor, and the compact model would lose the layout the user chose for speed)."""
    new = t.detach()
    for axis, keep in cuts:
        new = new.index_select(axis, torch.as_tensor(keep, device=t.device))
    fmt = torch.contiguous_format
    if not t.is_contiguous():
        fmt = next((f for f, n in ((torch.channels_last, 4), (torch.channels_last_3d, 5))
                    if t.dim() == n and t.is_contiguous(memory_format=f)), fmt)
    return new.clone(memory_format=fmt)
