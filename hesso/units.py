"""Flattened view of a search space's prunable units, for vectorised per-unit work.

Only groups whose producer tensors HESSO may write take part: a group with a producer that is a
buffer, is frozen (``requires_grad=False``) or is not among the ``owned`` tensors (the optimizer's
parameters) is *excluded* (:attr:`UnitLayout.excluded`), so no slot, and hence no decay, hold,
snapshot or state zeroing, ever reaches a tensor the optimizer was not given.

Every unit of every included group gets a *global id* ``0 … U-1`` (groups in order, units in
order); id ``U`` is a dummy meaning "no unit". Each distinct ``(tensor, axis)`` that some group
uses as a producer becomes a :class:`Slot` whose ``index`` maps every position along ``axis`` to a
global id. Per-unit reductions are then segment sums (``index_add_``) over slots, and per-unit
factors reach every element with one gather (``index_select``) and a broadcast multiply.

A sharded parameter (a ``DTensor``, e.g. from FSDP2) is seen through its local shard
(:mod:`hesso.distributed`): a slot's ``index`` covers only the local positions along its axis,
and every write goes to the local shard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hesso.distributed import local, shard_span
from hesso.space import PRODUCER, ROLES, GroupLike, SpaceLike, named_tensors

__all__ = ["Slot", "UnitLayout", "UnitScaler", "exclusions", "named_tensors", "unwrap"]


def unwrap(model: nn.Module) -> nn.Module:
    """The wrapped module of a ``DistributedDataParallel``/``DataParallel`` model, else the model."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    while isinstance(model, DistributedDataParallel | DataParallel):
        model = model.module
    return model


@dataclass(frozen=True, eq=False)
class Slot:
    """One producer ``(tensor, axis)``; ``index[i]`` is the global unit id of local position ``i``.

    ``tensor`` is the parameter itself (a ``DTensor`` when sharded); ``index`` covers the positions
    of its local shard along ``axis`` (all of them when it is not sharded along ``axis``).
    """

    name: str
    tensor: torch.Tensor
    axis: int
    index: torch.Tensor  # (local size,) long, on the tensor's device; U where no unit
    #: every member behind this slot says its gradient is exactly zero once its unit is all zero
    #: (e.g. conv rows feeding a norm whose gamma and beta are zero): no masking needed to hold it
    grad_free: bool = False
    #: whether this rank adds the slot's sums (False on a replica another rank already counts)
    counts: bool = True

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape that broadcasts a per-position vector along ``axis`` of the local shard."""
        shape = [1] * self.tensor.dim()
        shape[self.axis] = self.index.numel()
        return tuple(shape)

    def rows(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (shaped like ``tensor``) as ``(size, -1)``: one row per local position along ``axis``."""
        t = local(t)
        return t.movedim(self.axis, 0).reshape(t.shape[self.axis], -1)

    def __repr__(self) -> str:
        return f"Slot({self.name}, axis={self.axis}, {tuple(self.tensor.shape)})"


def exclusions(groups: Iterable[GroupLike], model: nn.Module,
               owned: Iterable[torch.Tensor] | None = None) -> dict[str, str]:
    """``{group id: reason}`` for the groups with a producer tensor HESSO must not write.

    A producer is writable when it is a parameter of ``model`` that requires grad and, unless
    ``owned`` is ``None``, is one of the ``owned`` tensors (by identity). Also checks that every
    member names a tensor of the model and has a known role.
    """
    tensors = named_tensors(model)
    params = {id(p) for p in model.parameters()}
    mine = None if owned is None else {id(t) for t in owned}
    out: dict[str, str] = {}
    for g in groups:
        for m in g.members:
            if m.role not in ROLES:
                raise ValueError(f"group {g.id!r}: member {m.param!r} has role {m.role!r}, not one of {ROLES}")
            if m.role != PRODUCER:
                continue
            t = tensors.get(m.param)
            if t is None:
                raise KeyError(f"group {g.id!r}: the model has no parameter or buffer {m.param!r}")
            if g.id in out:
                continue
            if id(t) not in params:
                out[g.id] = f"producer {m.param} is a buffer, not a parameter"
            elif not t.requires_grad:
                out[g.id] = f"producer {m.param} is frozen (requires_grad=False)"
            elif mine is not None and id(t) not in mine:
                out[g.id] = f"producer {m.param} is not among the optimizer's parameters"
    return out


class UnitLayout:
    """The prunable units of a search space, flattened, over the groups HESSO may write.

    ``owned`` are the tensors HESSO may write (the optimizer's parameters; ``None``: every parameter
    of ``model``; frozen ones never). Attributes: ``groups`` (the included prunable groups, in order), ``excluded``
    (``{group id: reason}`` for prunable groups left out, see :func:`exclusions`) and
    ``excluded_units`` (their unit count), ``offsets``
    (``G+1`` global id offsets), ``group_of`` (group index of every unit),
    ``unit_params``/``unit_flops``/``unit_size`` (float64, per unit; ``unit_size`` counts producer
    elements), ``divisors`` (per group) and ``slots`` (owned producer tensors only).
    """

    def __init__(self, model: nn.Module, space: SpaceLike, group_divisible: int = 1,
                 owned: Iterable[torch.Tensor] | None = None):
        model = unwrap(model)
        tensors = named_tensors(model)
        candidates = [g for g in space.groups if g.prunable and g.num_units > 0]
        self.excluded: dict[str, str] = exclusions(candidates, model, owned)
        self.groups = [g for g in candidates if g.id not in self.excluded]
        self.excluded_units = sum(g.num_units for g in candidates if g.id in self.excluded)
        counts = [g.num_units for g in self.groups]
        self.offsets = torch.tensor([0, *torch.tensor(counts, dtype=torch.long).cumsum(0).tolist()],
                                    dtype=torch.long)
        self.num_units = int(self.offsets[-1])
        self.group_of = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))
        self.unit_params = _cat([g.unit_params for g in self.groups])
        self.unit_flops = _cat([g.unit_flops for g in self.groups])
        self.divisors = [_lcm(max(1, group_divisible), max(1, int(getattr(g, "divisor", 1)))) for g in self.groups]

        U = self.num_units
        by_key: dict[tuple[int, int], tuple[str, torch.Tensor, torch.Tensor]] = {}
        grad_free: dict[tuple[int, int], bool] = {}
        for gi, g in enumerate(self.groups):
            base = int(self.offsets[gi])
            for m in g.members:
                if m.role != PRODUCER:
                    continue
                t = tensors[m.param]
                axis = m.axis % max(1, t.dim())
                key = (id(t), axis)
                if key not in by_key:
                    by_key[key] = (m.param, t, torch.full((t.shape[axis],), U, dtype=torch.long))
                grad_free[key] = grad_free.get(key, True) and bool(m.grad_free)
                index = by_key[key][2]
                pos = torch.as_tensor(m.positions).long().cpu()
                if (index[pos] != U).any():
                    raise ValueError(f"group {g.id!r}: positions of {m.param!r} along axis {axis} "
                                     "already belong to another unit")
                index[pos] = torch.as_tensor(m.units).long().cpu() + base
        size = torch.zeros(U + 1, dtype=torch.float64)
        self.slots: list[Slot] = []
        local_cpu = []
        for key, (name, t, index) in by_key.items():
            per_pos = t.numel() // max(1, t.shape[key[1]])
            size.index_add_(0, index, torch.full((index.numel(),), float(per_pos), dtype=torch.float64))
            start, length, counts = shard_span(t, key[1])
            local_cpu.append(index[start:start + length])
            self.slots.append(Slot(name, t, key[1], local_cpu[-1].to(local(t).device), grad_free[key], counts))
        self.unit_size = size[:U]
        # every slot's (local) positions end to end, and the slot each belongs to: one gather finds
        # the slots that some set of units touches
        self._all_index = torch.cat(local_cpu) if local_cpu else torch.zeros(0, dtype=torch.long)
        self._slot_of = torch.repeat_interleave(torch.arange(len(self.slots)),
                                                torch.tensor([i.numel() for i in local_cpu], dtype=torch.long))

    def group_units(self, gi: int) -> range:
        """Global ids of group ``gi``."""
        return range(int(self.offsets[gi]), int(self.offsets[gi + 1]))

    def split(self, unit_ids: torch.Tensor) -> dict[str, list[int]]:
        """Global ids to ``{group_id: [local unit, …]}`` (the form ``SearchSpace.zero_`` takes)."""
        out: dict[str, list[int]] = {}
        for u in sorted(unit_ids.tolist()):
            gi = int(self.group_of[u])
            out.setdefault(self.groups[gi].id, []).append(u - int(self.offsets[gi]))
        return out

    def slots_touching(self, mask: torch.Tensor, skip_grad_free: bool = False) -> list[Slot]:
        """Slots with at least one position in a unit where ``mask`` (``U`` bools) is set."""
        ext = torch.cat([mask.cpu(), torch.zeros(1, dtype=torch.bool)])
        hit = torch.zeros(len(self.slots), dtype=torch.bool)
        hit[self._slot_of[ext[self._all_index]]] = True
        return [s for s, h in zip(self.slots, hit.tolist(), strict=True) if h and not (skip_grad_free and s.grad_free)]

    def __repr__(self) -> str:
        excluded = f", {len(self.excluded)} excluded" if self.excluded else ""
        return f"UnitLayout({len(self.groups)} groups, {self.num_units} units, {len(self.slots)} slots{excluded})"


class UnitScaler:
    """Multiplies every element of a set of slots by a per-unit factor, without a loop over groups.

    For each ``(device, dtype)`` the slots' index vectors are concatenated once; a call gathers the
    ``U+1`` factors into one flat buffer (one ``index_select``) whose pieces are broadcastable views,
    then multiplies all tensors with one ``torch._foreach_mul_``. A tensor reached along two axes is
    multiplied once, by the smaller of its two factors. Sharded tensors are multiplied on their
    local shards.
    """

    def __init__(self, slots: Sequence[Slot]):
        per_tensor: dict[int, list[Slot]] = {}
        for s in slots:
            per_tensor.setdefault(id(s.tensor), []).append(s)
        self._buckets: list[tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]] = []
        self._multi: list[tuple[torch.Tensor, list[torch.Tensor]]] = []
        by_kind: dict[tuple[torch.device, torch.dtype], list[Slot]] = {}
        for ss in per_tensor.values():
            t = ss[0].tensor
            by_kind.setdefault((t.device, t.dtype), []).extend(ss)
        for (_, dtype), ss in by_kind.items():
            index = torch.cat([s.index for s in ss])
            buf = torch.empty(index.numel(), dtype=dtype, device=index.device)
            views, off = [], 0
            for s in ss:
                n = s.index.numel()
                views.append(buf[off:off + n].view(s.shape))
                off += n
            single_t, single_v = [], []
            for s, v in zip(ss, views, strict=True):
                if len(per_tensor[id(s.tensor)]) == 1:
                    single_t.append(s.tensor)
                    single_v.append(v)
            for ts in {id(s.tensor): s.tensor for s in ss if len(per_tensor[id(s.tensor)]) > 1}.values():
                self._multi.append((ts, [v for s, v in zip(ss, views, strict=True) if s.tensor is ts]))
            self._buckets.append((index, buf, single_t, single_v))

    @torch.no_grad()
    def load(self, factor: torch.Tensor) -> UnitScaler:
        """Gather ``factor`` (``U+1`` values per global id, the last one 1) into the views."""
        for index, buf, _, _ in self._buckets:
            torch.index_select(factor.to(device=buf.device, dtype=buf.dtype), 0, index, out=buf)
        return self

    @torch.no_grad()
    def mul_(self, tensors_of: Callable[[torch.Tensor], torch.Tensor | None] | None = None) -> None:
        """Multiply the slots' tensors, or ``tensors_of(tensor)`` (e.g. its grad), by the loaded factor."""
        for _, _, ts, vs in self._buckets:
            pairs = [(t if tensors_of is None else tensors_of(t), v) for t, v in zip(ts, vs, strict=True)]
            pairs = [(local(t), v) for t, v in pairs if t is not None]
            if pairs:
                torch._foreach_mul_([t for t, _ in pairs], [v for _, v in pairs])
        for t, vs in self._multi:
            target = t if tensors_of is None else tensors_of(t)
            if target is None:
                continue
            f = vs[0]
            for v in vs[1:]:
                f = torch.minimum(f, v)
            local(target).mul_(f)


def _cat(ts: list[torch.Tensor]) -> torch.Tensor:
    if not ts:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat([torch.as_tensor(t, dtype=torch.float64).flatten().cpu() for t in ts])


def _lcm(a: int, b: int) -> int:
    import math

    return a * b // math.gcd(a, b)
