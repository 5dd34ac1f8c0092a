"""The search space: zero-invariant groups of parameter slices.

This module holds plain data only. The optimizer (``hesso``) and the rewriter read it; neither
re-derives groups. A :class:`Group` is a set of *units*; removing a unit removes, for every
:class:`Member`, the positions along ``member.axis`` whose entry in ``member.units`` is that unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from otograph.errors import UnsupportedInput
from otograph.tracing.values import unwrap

__all__ = ["Member", "Group", "SearchSpace", "PRODUCER", "CONSUMER", "BUFFER", "named_tensors"]

#: The slice must be exactly zero for the unit to be removable (weight rows, biases, norm affine).
PRODUCER = "producer"
#: The slice is removed with the unit, its value does not matter (input channels of a consumer).
CONSUMER = "consumer"
#: A buffer slice removed with the unit (running statistics).
BUFFER = "buffer"


@dataclass(frozen=True, eq=False)
class Member:
    """One ``(tensor, axis)`` that a group slices.

    ``positions[i]`` is an index along ``axis`` of the tensor named ``param`` and ``units[i]`` the
    unit (``0 … num_units-1``) it belongs to. Positions of one unit need not be contiguous.
    """

    param: str
    axis: int
    positions: torch.Tensor
    units: torch.Tensor
    role: str
    size: int  # length of ``axis`` in the original tensor
    #: its gradient is exactly zero once the whole unit is zero (conv rows feeding only an affine
    #: BatchNorm of the same unit), so an optimizer need not mask it to keep it at zero
    grad_free: bool = False

    def indices(self, unit: int) -> list[int]:
        return self.positions[self.units == unit].tolist()

    def __repr__(self) -> str:
        return f"Member({self.param}, axis={self.axis}, {self.positions.numel()}/{self.size} positions, {self.role})"


@dataclass(frozen=True, eq=False)
class Group:
    """A zero-invariant group: ``num_units`` units that can each be removed on their own.

    ``prunable`` is False when the analysis could not prove zero-invariance; ``reason`` says why.
    ``unit_params[u]`` and ``unit_flops[u]`` are what removing unit ``u`` alone saves (exactly, at
    the full model; for several units use :attr:`SearchSpace.costs`).
    """

    id: str
    num_units: int
    members: tuple[Member, ...]
    prunable: bool
    reason: str | None
    unit_params: torch.Tensor
    unit_flops: torch.Tensor
    divisor: int = 1  # remove units in multiples of this (kept for future grouped layouts)

    @property
    def producers(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.role == PRODUCER)

    def unit_indices(self, unit: int) -> dict[tuple[str, int], list[int]]:
        """``{(param, axis): indices}`` of one unit."""
        return {(m.param, m.axis): m.indices(unit) for m in self.members}

    @property
    def params(self) -> int:
        return int(self.unit_params.sum())

    def __repr__(self) -> str:
        state = "prunable" if self.prunable else f"unprunable: {self.reason}"
        return f"Group({self.id!r}, {self.num_units} units, {len(self.members)} members, {state})"


@dataclass(eq=False)
class SearchSpace:
    """All groups of a model plus what the rewriter needs (the traced graph and slot analysis)."""

    groups: list[Group]
    total_params: int
    total_flops: int
    opaque: tuple[str, ...] = ()
    traced: Any = field(default=None, repr=False)
    analysis: Any = field(default=None, repr=False)
    #: parameters that lie in prunable groups (each element counted once)
    prunable_params: int = 0
    #: the dependency graph (networkx), each node annotated with its op ``kind``, ``family`` and
    #: the ``groups`` its value carries
    graph: Any = field(default=None, repr=False)
    #: exact parameters and FLOPs of the compact model for any removed units
    #: (:class:`~otograph.analysis.costs.CostModel`)
    costs: Any = field(default=None, repr=False)

    @property
    def prunable_groups(self) -> list[Group]:
        return [g for g in self.groups if g.prunable]

    def group(self, gid: str) -> Group:
        for g in self.groups:
            if g.id == gid:
                return g
        raise KeyError(f"no group {gid!r}; groups are: {', '.join(g.id for g in self.groups[:20])} …")

    def check_units(self, units: Mapping[str, Iterable[int]]) -> dict[str, list[int]]:
        """``units`` as ``{group id: sorted unit indices}``, or an error saying what is wrong.

        Units are integer indices (``[0, 3]``), never masks (``[True, False, …]``): a mask, a float
        or a string is a ``TypeError``. An unknown or unprunable group, an index out of range, or
        every unit of a group (nothing would be left) is an :class:`UnsupportedInput` error.
        """
        if not isinstance(units, Mapping):
            raise TypeError(f"units must be a mapping {{group id: [unit, …]}}, not {type(units).__name__}")
        out: dict[str, list[int]] = {}
        for gid, us in units.items():
            group = self._group_or_error(gid)
            idx = _indices(gid, us)
            if not idx:
                continue
            if not group.prunable:
                raise UnsupportedInput(f"group {gid!r} is not prunable ({group.reason}); its units cannot be removed")
            if idx[0] < 0 or idx[-1] >= group.num_units:
                raise UnsupportedInput(f"group {gid!r} has units 0…{group.num_units - 1}; got {idx}")
            if len(idx) == group.num_units:
                raise UnsupportedInput(f"removing all {group.num_units} units of group {gid!r} would leave an "
                                       f"empty tensor", hint="keep at least one unit")
            out[gid] = idx
        return out

    def _group_or_error(self, gid) -> Group:
        try:
            return self.group(gid)
        except KeyError as e:
            raise UnsupportedInput(str(e.args[0])) from None

    @torch.no_grad()
    def zero_(self, model: torch.nn.Module, units: Mapping[str, Iterable[int]]) -> None:
        """Zero, in place, every producer slice of the given units: ``{group_id: [unit, …]}``
        (checked by :meth:`check_units`; ``model`` may be wrapped, e.g. in ``DataParallel``)."""
        tensors = named_tensors(unwrap(model))
        for gid, us in self.check_units(units).items():
            group = self.group(gid)
            us = torch.as_tensor(us, dtype=torch.long)
            for m in group.producers:
                sel = m.positions[torch.isin(m.units, us)]
                t = tensors[m.param]
                t.index_fill_(m.axis, sel.to(t.device), 0)

    @torch.no_grad()
    def zero_units(self, model: torch.nn.Module) -> dict[str, list[int]]:
        """Units of prunable groups whose producer slices are all exactly zero in ``model``."""
        tensors = named_tensors(unwrap(model))
        found: dict[str, list[int]] = {}
        for g in self.prunable_groups:
            nonzero = torch.zeros(g.num_units, dtype=torch.long)
            for m in g.producers:
                t = tensors[m.param].detach()
                rows = t.movedim(m.axis, 0).reshape(t.shape[m.axis], -1).ne(0).any(1).cpu()
                nonzero.index_add_(0, m.units, rows[m.positions].long())
            zeros = (nonzero == 0).nonzero().flatten().tolist()
            if zeros:
                found[g.id] = zeros
        return found

    def __repr__(self) -> str:
        p = len(self.prunable_groups)
        share = self.prunable_params / max(1, self.total_params)
        return (f"SearchSpace({len(self.groups)} groups, {p} prunable, "
                f"{share:.1%} of {self.total_params:,} parameters prunable)")


def _indices(gid: str, us: object) -> list[int]:
    """Sorted unique unit indices of one group's entry, refusing masks and non-integers."""
    if isinstance(us, torch.Tensor):
        if us.dtype == torch.bool:
            raise TypeError(f"units of group {gid!r} are a boolean mask; give unit indices, e.g. "
                            f"mask.nonzero().flatten().tolist()")
        if us.is_floating_point():
            raise TypeError(f"units of group {gid!r} must be integer indices, not {us.dtype}")
        us = us.flatten().tolist()
    if isinstance(us, (str, bytes)) or not isinstance(us, Iterable):
        raise TypeError(f"units of group {gid!r} must be a list of integer indices, not {type(us).__name__}")
    us = list(us)
    if us and all(isinstance(u, (bool, np.bool_)) for u in us):
        raise TypeError(f"units of group {gid!r} look like a boolean mask ({us[:4]}…); give unit indices, e.g. "
                        f"[i for i, keep in enumerate(mask) if keep]")
    for u in us:
        if isinstance(u, (bool, np.bool_)) or not isinstance(u, (int, np.integer)):
            raise TypeError(f"units of group {gid!r} must be integer indices; got {u!r} ({type(u).__name__})")
    return sorted({int(u) for u in us})


def named_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by every name they are reachable under (tied weights included)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in model.named_parameters(remove_duplicate=False):
        out.setdefault(name, t)
    for name, t in model.named_buffers(remove_duplicate=False):
        out.setdefault(name, t)
    return out
