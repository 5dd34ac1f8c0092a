"""The exactness check: zero random units, compress, compare in float64. Used by tests and tools."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_map

from otograph.analysis import search_space
from otograph.analysis.space import SearchSpace
from otograph.graph.cost import count_params
from otograph.rewrite import compress, make_plan
from otograph.rewrite.verify import Verification, verify
from otograph.tracing.values import unwrap

__all__ = ["random_units", "expected_params", "ExactnessResult", "check_exact", "to_double"]


def random_units(space: SearchSpace, fraction: float, generator: torch.Generator) -> dict[str, list[int]]:
    """At least ``fraction`` of the units of every prunable group (always keeping one)."""
    out = {}
    for g in space.prunable_groups:
        if g.num_units < 2:
            continue
        k = min(g.num_units - 1, max(1, -int(-fraction * g.num_units // 1)))
        out[g.id] = sorted(torch.randperm(g.num_units, generator=generator)[:k].tolist())
    return out


def expected_params(model: torch.nn.Module, space: SearchSpace, units: dict[str, list[int]]) -> int:
    """Parameter count after removing exactly the member slices of ``units`` (of ``model`` seen
    through a ``DataParallel``/``DDP``/``torch.compile`` wrapper, as the analysis saw it)."""
    plan = make_plan(space, units)
    total = 0
    for name, p in unwrap(model).named_parameters():
        n = 1
        for axis, size in enumerate(p.shape):
            keep = plan.params.get((name, axis))
            n *= len(keep) if keep is not None else size
        total += n
    return total


def to_double(x: Any) -> Any:
    return tree_map(lambda t: t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, x)


@dataclass(frozen=True)
class ExactnessResult:
    space: SearchSpace
    units: dict[str, list[int]]
    verification: Verification
    expected_params: int

    @property
    def ok(self) -> bool:
        v = self.verification
        return v.exact and v.params_after == self.expected_params


@torch.no_grad()
def _decorrelate(model: torch.nn.Module, seed: int) -> None:
    """Give constant-initialised tensors (zero heads and biases, unit norms, BN statistics) random
    values, so that a check cannot pass because some output is trivially constant."""
    g = torch.Generator().manual_seed(seed)
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if not t.is_floating_point() or t.numel() < 2:
            continue
        if name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
        elif name.endswith("running_mean") or bool((t == t.flatten()[0]).all()):
            t.add_(0.1 * torch.randn(t.shape, generator=g, dtype=t.dtype))


def check_exact(model: torch.nn.Module, example_inputs: Any, fresh_inputs: Any, *, fraction: float = 0.3,
                seed: int = 0, space: SearchSpace | None = None, **space_options) -> ExactnessResult:
    """Zero ≥ ``fraction`` of every prunable group's units of a float64 copy of ``model``, compress
    it, and compare compact vs zeroed on ``fresh_inputs``."""
    ref = copy.deepcopy(model).double().eval()
    _decorrelate(ref, seed)
    example_inputs, fresh_inputs = to_double(example_inputs), to_double(fresh_inputs)
    if space is None:
        space = search_space(ref, example_inputs, **space_options)
    units = random_units(space, fraction, torch.Generator().manual_seed(seed))
    space.zero_(ref, units)
    compact = compress(ref, space, units)
    v = verify(ref, compact, fresh_inputs)
    assert count_params(compact) == v.params_after
    return ExactnessResult(space, units, v, expected_params(ref, space, units))
