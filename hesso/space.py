"""What HESSO reads from a search space: a structural protocol, so ``hesso`` imports no ``otograph``.

Any object with these attributes will do; ``otograph.SearchSpace`` (with its ``Group`` and
``Member``) is the one the toolkit builds. HESSO only reads it.

* :class:`SpaceLike`: ``groups`` and the model's ``total_params`` / ``total_flops``.
* :class:`GroupLike`: ``id``, ``num_units``, ``members``, ``prunable``, and the per-unit costs
  ``unit_params`` / ``unit_flops``; optionally ``divisor`` (remove units in multiples of it, default 1).
* :class:`MemberLike`: one ``(tensor name, axis)`` of a group; ``positions[i]`` along ``axis`` belongs
  to unit ``units[i]``; ``role`` is one of :data:`ROLES`; ``grad_free`` says its gradient is exactly
  zero once its whole unit is zero.

Role strings are part of the contract. HESSO writes (decays, holds at zero, zeroes optimizer state
of) :data:`PRODUCER` slices only; :data:`CONSUMER` and :data:`BUFFER` slices are left to the rewriter.

Examples
--------
A hand-built space for a two-layer MLP, whose hidden layer has three units:

>>> from types import SimpleNamespace as NS
>>> import torch
>>> _ = torch.manual_seed(0)
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
>>> def member(param, axis, role):
...     return NS(param=param, axis=axis, positions=torch.arange(3), units=torch.arange(3), role=role,
...               grad_free=False)
>>> hidden = NS(id="0", num_units=3, prunable=True, unit_params=torch.full((3,), 7.0),
...             unit_flops=torch.full((3,), 12.0),
...             members=[member("0.weight", 0, PRODUCER), member("0.bias", 0, PRODUCER),
...                      member("2.weight", 1, CONSUMER)])
>>> space = NS(groups=[hidden], total_params=23, total_flops=36)
>>> isinstance(space, SpaceLike) and isinstance(hidden, GroupLike)
True
>>> from hesso import HESSO
>>> opt = HESSO(model, space, lr=0.1, target_group_sparsity=0.5, pruning_steps=2)
>>> for _ in range(3):
...     opt.zero_grad()
...     model(torch.randn(8, 4)).square().mean().backward()
...     opt.step()
>>> [u] = opt.pruned_units["0"]                  # one unit of three: the lowest saliency
>>> bool(model[0].weight[u].eq(0).all() and model[0].bias[u] == 0)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["PRODUCER", "CONSUMER", "BUFFER", "ROLES", "MemberLike", "GroupLike", "SpaceLike", "named_tensors"]

#: The slice must be exactly zero for its unit to be removable (weight rows, biases, norm affine):
#: HESSO drives it to zero and holds it there.
PRODUCER = "producer"
#: The slice is removed with its unit and its value does not matter (a consumer's input channels).
CONSUMER = "consumer"
#: A buffer slice removed with its unit (running statistics); HESSO never writes it.
BUFFER = "buffer"
ROLES = (PRODUCER, CONSUMER, BUFFER)


@runtime_checkable
class MemberLike(Protocol):
    """One ``(tensor, axis)`` of a group: ``positions[i]`` along ``axis`` is in unit ``units[i]``."""

    @property
    def param(self) -> str: ...  # the tensor's name in ``model.named_parameters()``/``named_buffers()``
    @property
    def axis(self) -> int: ...
    @property
    def positions(self) -> torch.Tensor: ...  # (n,) long
    @property
    def units(self) -> torch.Tensor: ...  # (n,) long, 0 … num_units-1
    @property
    def role(self) -> str: ...  # one of ROLES
    @property
    def grad_free(self) -> bool: ...


@runtime_checkable
class GroupLike(Protocol):
    """``num_units`` units removable one by one; ``unit_params[u]``/``unit_flops[u]`` is what unit ``u`` saves.

    An optional ``divisor`` attribute (default 1) asks for units to be removed in multiples of it.
    """

    @property
    def id(self) -> str: ...
    @property
    def num_units(self) -> int: ...
    @property
    def members(self) -> Sequence[MemberLike]: ...
    @property
    def prunable(self) -> bool: ...
    @property
    def unit_params(self) -> torch.Tensor: ...
    @property
    def unit_flops(self) -> torch.Tensor: ...


@runtime_checkable
class SpaceLike(Protocol):
    """The groups of one model and the model's whole parameter and FLOP counts."""

    @property
    def groups(self) -> Sequence[GroupLike]: ...
    @property
    def total_params(self) -> int: ...
    @property
    def total_flops(self) -> int: ...


def named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by every name they are reachable under (tied weights included).

    >>> m = torch.nn.BatchNorm1d(2)
    >>> sorted(named_tensors(m))
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """
    out: dict[str, torch.Tensor] = {}
    for name, t in model.named_parameters(remove_duplicate=False):
        out.setdefault(name, t)
    for name, t in model.named_buffers(remove_duplicate=False):
        out.setdefault(name, t)
    return out
