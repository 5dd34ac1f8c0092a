"""Sharded parameters: local shards of ``DTensor`` parameters and the one reduction HESSO needs.

With FSDP2 (``torch.distributed.fsdp.fully_shard``) every parameter, gradient and optimizer state
is a ``DTensor`` whose *local shard* is a slice of the whole tensor (``Shard(0)``: a block of rows).
HESSO works on local shards only:

* per-position sums (saliency terms) are computed from the local shard and added into one flat
  ``(3, U+1)`` float64 buffer; :class:`Reducer` sums that buffer over the ranks with **one**
  ``all_reduce`` per step that computes saliency (a unit split across ranks, e.g. one whose rows
  straddle a shard boundary or one running along another axis, is whole after the sum);
* zeroing, decay and hold multiply local shards by per-position factors: no communication.

A shard that is replicated (a ``Replicate`` mesh dimension, as in HSDP, or a plain tensor next to
sharded ones) contributes from the first coordinate of that dimension only, so the sum counts every
element once. ``Partial`` placements are refused. Plain tensors without any ``DTensor`` around mean
no reduction at all (single process, or DDP where every rank holds the same values).

Nothing here imports ``torch.distributed.tensor`` eagerly: if that module was never imported, no
tensor can be a ``DTensor``.

>>> t = torch.ones(4, 3)
>>> is_dtensor(t), local(t) is t, shard_span(t, 0)
(False, True, (0, 4, True))
>>> Reducer.for_tensors([t]) is None
True
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["is_dtensor", "local", "shard_span", "Reducer"]


def _dtensor_type() -> type | None:
    mod = sys.modules.get("torch.distributed.tensor")
    return getattr(mod, "DTensor", None) if mod is not None else None


def is_dtensor(t: Any) -> bool:
    """Whether ``t`` is a ``torch.distributed.tensor.DTensor``."""
    cls = _dtensor_type()
    return cls is not None and isinstance(t, cls)


def local(t: torch.Tensor) -> torch.Tensor:
    """The local shard of a ``DTensor`` (an alias: writing it writes the parameter), else ``t``.

    Never cache the result: FSDP2 may re-point a parameter's local tensor (at lazy init).
    """
    return t.to_local() if is_dtensor(t) else t


def shard_span(t: torch.Tensor, axis: int) -> tuple[int, int, bool]:
    """``(offset, length, counts)``: the local shard covers ``[offset, offset+length)`` along ``axis``.

    ``counts`` is False on a rank whose shard is a replica that another rank already contributes.
    """
    if not is_dtensor(t):
        return 0, t.shape[axis] if t.dim() else 1, True
    from torch.distributed.tensor import Partial, Replicate
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    mesh, placements = t.device_mesh, t.placements
    if any(isinstance(p, Partial) for p in placements):
        raise ValueError(f"HESSO cannot read a parameter with a Partial placement ({placements})")
    shape, offset = compute_local_shape_and_global_offset(t.shape, mesh, placements)
    coord = mesh.get_coordinate() or [0] * mesh.ndim
    counts = all(c == 0 for c, p in zip(coord, placements, strict=True) if isinstance(p, Replicate))
    return int(offset[axis]), int(shape[axis]), counts


class Reducer:
    """Sums per-unit partial sums over the ranks that hold shards: one ``all_reduce`` per call.

    ``calls`` counts the collectives issued (for tests and the docs' table).
    """

    def __init__(self, group: Any, device: torch.device, rank_counts_plain: bool):
        self.group = group
        self.device = device
        #: plain (unsharded) tensors are replicas: only the group's first rank adds them
        self.rank_counts_plain = rank_counts_plain
        self.calls = 0

    @classmethod
    def for_tensors(cls, tensors: Iterable[torch.Tensor]) -> Reducer | None:
        """A reducer over the mesh of the ``DTensor`` among ``tensors``, or None when there are none."""
        meshes = []
        for t in tensors:
            if is_dtensor(t) and not any(t.device_mesh == m for m in meshes):
                meshes.append(t.device_mesh)
        if not meshes:
            return None
        import torch.distributed as dist

        if len(meshes) > 1:
            raise ValueError(f"HESSO needs every sharded parameter on one device mesh, got {len(meshes)}: "
                             f"{meshes}")
        mesh = meshes[0]
        if mesh.ndim == 1:
            group = mesh.get_group()
        elif mesh.size() == dist.get_world_size():
            group = dist.group.WORLD
        else:
            raise ValueError(f"HESSO supports a 1-D device mesh or one spanning all ranks, got {mesh}")
        device = torch.device(mesh.device_type, torch.cuda.current_device()) if mesh.device_type == "cuda" \
            else torch.device(mesh.device_type)
        return cls(group, device, dist.get_rank(group) == 0)

    def all_reduce(self, buf: torch.Tensor) -> torch.Tensor:
        """Sum ``buf`` over the group in place (moved to the mesh's device and back if needed)."""
        import torch.distributed as dist

        work = buf.to(self.device)
        dist.all_reduce(work, group=self.group)
        self.calls += 1
        return work.to(buf.device) if work is not buf else buf
