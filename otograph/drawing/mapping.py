"""Read-only views of a search space for drawing: which groups each value carries, shapes after pruning.

Example:
    >>> import torch, otograph
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
    >>> space = otograph.search_space(net, torch.randn(1, 3, 16, 16))
    >>> {n.name: g for n, g in node_groups(space).items()}
    {'_0': ('0',), '_1': ('0',), '_2': ('2',)}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch.fx as fx

from otograph.rewrite.plan import make_plan
from otograph.tracing.values import META, TensorInfo

__all__ = ["node_groups", "shapes_after", "module_path"]


def node_groups(space) -> dict[fx.Node, tuple[str, ...]]:
    """``{node: (group id, …)}`` for every node whose value carries channels of some group.

    Read from the dependency graph the analysis annotated; groups in the order of ``space.groups``.
    """
    return {data["fx"]: data["groups"] for _, data in space.graph.nodes(data=True) if data.get("groups")}


def shapes_after(space, removed: Mapping[str, Iterable[int]] | None) -> dict[fx.Node, tuple[tuple, tuple]]:
    """``{node: (shape before, shape after)}`` for tensor-valued nodes, after removing ``removed``."""
    plan = make_plan(space, removed or {})
    out = {}
    for node in space.traced.gm.graph.nodes:
        info = node.meta.get(META)
        if isinstance(info, TensorInfo):
            out[node] = (tuple(info.shape), plan.new_shape(node, tuple(info.shape)))
    return out


def module_path(node: fx.Node) -> tuple[str, ...]:
    """Where a node lives: a module call is its module path; an op is a child of its module."""
    if node.op == "call_module":
        return tuple(str(node.target).split("."))
    stack = node.meta.get("nn_module_stack") or {}
    owner = next(reversed(stack.values()))[0] if stack else ""
    parts = tuple(owner.split(".")) if owner else ()
    return parts + (node.name,)
