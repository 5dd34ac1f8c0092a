"""Build the compact ``GraphModule``: slice tensors, resize modules, let each op's rule fix its copy.

The original model is never touched: tensors are copied, the graph is rebuilt node by node into a
new one. Every size the code carries (view/reshape/expand shapes, split sizes, slice bounds,
attention scale, conv groups) is fixed by the ``rewrite`` of the op's rule, and module attributes
(``out_channels``, ``num_features`` …) by the ``resize`` of the rule for the module's class.
"""

from __future__ import annotations

import copy
import operator

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn

from otograph.analysis.registry import BUILTIN, Registry
from otograph.analysis.space import named_tensors
from otograph.errors import RewriteError
from otograph.graph.effects import is_impure
from otograph.rewrite.edit import Edit
from otograph.rewrite.plan import Plan, take
from otograph.tracing.values import META, TensorInfo, unwrap

__all__ = ["shrink", "Builder", "refuse_baked_casts"]


def _tensors_by_id(root: nn.Module) -> dict[int, list[tuple[nn.Module, str]]]:
    where: dict[int, list[tuple[nn.Module, str]]] = {}
    for mod in root.modules():
        for name, t in list(mod._parameters.items()) + list(mod._buffers.items()):
            if t is not None:
                where.setdefault(id(t), []).append((mod, name))
    return where


def _slice_tensors(root: nn.Module, plan: Plan) -> None:
    named = named_tensors(root)
    where = _tensors_by_id(root)
    by_name: dict[str, list[tuple[int, np.ndarray]]] = {}
    for (name, axis), keep in plan.params.items():
        by_name.setdefault(name, []).append((axis, keep))
    for name, cuts in by_name.items():
        t = named[name]
        new = take(t, cuts)
        repl = nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new
        for mod, attr in where[id(t)]:
            if attr in mod._parameters:
                mod._parameters[attr] = repl
            else:
                mod._buffers[attr] = repl


class Builder:
    """Copies the traced graph node by node; each op's rule rewrites its own copy."""

    def __init__(self, gm: fx.GraphModule, root: nn.Module, plan: Plan, registry: Registry):
        self.old, self.root, self.plan, self.registry = gm, root, plan, registry
        self.graph = fx.Graph()
        self.graph._codegen = copy.deepcopy(gm.graph._codegen)  # pytree in/out specs of exported graphs
        self.env: dict[fx.Node, fx.Node | None] = {}
        self.tuples: dict[fx.Node, tuple] = {}  # tuple-valued nodes replaced by several nodes
        self.modules = dict(gm.named_modules())
        self._n_keep = 0

    def keep_index(self, keep: np.ndarray) -> fx.Node:
        """A ``get_attr`` of a new buffer holding the kept positions of a mask."""
        return self.constant(np.nonzero(keep)[0].astype(np.int64))

    def constant(self, values: np.ndarray) -> fx.Node:
        """A ``get_attr`` of a new buffer holding ``values`` (on the model's device)."""
        name = f"_otograph_keep_{self._n_keep}"
        self._n_keep += 1
        device = next((t.device for t in self.root.parameters()), None)
        self.root.register_buffer(name, torch.as_tensor(values, device=device))
        return self.graph.get_attr(name)

    def run(self) -> fx.Graph:
        for node in self.old.graph.nodes:
            if node.target is operator.getitem and node.args[0] in self.tuples:
                self.env[node] = self.tuples[node.args[0]][node.args[1]]
                continue
            new = self.graph.node_copy(node, lambda n: self.env[n])
            new.meta = dict(node.meta)
            self.env[node] = new
            rule = self.registry.rule_of(node, self.modules) if node.op.startswith("call") else None
            if rule is not None and rule.rewrite is not None:
                rule.rewrite(Edit(self, node, new, rule.kind))
        return self.graph


def _take_tensors(root: nn.Module, model: nn.Module, traced_shapes: dict[str, tuple[int, ...]]) -> None:
    """``root``'s tensors become copies of ``model``'s current ones (values, dtype, device); a traced
    tensor the model no longer has, or has with another shape, is an error naming it. Constants the
    frontend added (not the model's) follow the model's floating dtype and device."""
    src = named_tensors(model)
    where = _tensors_by_id(root)
    floating = [t for t in src.values() if t.is_floating_point()]
    dtype = floating[0].dtype if floating and all(t.dtype == floating[0].dtype for t in floating) else None
    device = next(iter(src.values())).device if src else None
    done: dict[int, torch.Tensor] = {}
    for name, t in list(root.named_parameters(remove_duplicate=False)) + list(
            root.named_buffers(remove_duplicate=False)):
        if id(t) in done:
            continue
        if traced_shapes and name not in traced_shapes:
            new = t.detach().to(device=device, dtype=dtype if t.is_floating_point() and dtype else t.dtype)
        else:
            s = src.get(name)
            if s is None:
                raise RewriteError(f"the model has no tensor {name!r}, which was traced",
                                   hint="compress the model the search space was built for, or build it again")
            if tuple(s.shape) != tuple(t.shape):
                raise RewriteError(f"the model's {name!r} has shape {tuple(s.shape)}, but {tuple(t.shape)} was traced",
                                   hint="build the search space again for the changed model")
            new = s.detach().clone()
        repl = nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new
        done[id(t)] = repl
        for mod, attr in where[id(t)]:
            (mod._parameters if attr in mod._parameters else mod._buffers)[attr] = repl


def refuse_baked_casts(gm: fx.GraphModule, model: nn.Module) -> None:
    """An exported graph writes every cast with the dtype seen at trace time (``x.to(x.dtype)``
    becomes a cast to float32): once the model is converted to another floating dtype, such a graph
    no longer computes what the model does. Name the first such cast."""
    infos = [n.meta.get(META) for n in gm.graph.nodes if n.op == "get_attr"]
    traced = {i.dtype for i in infos if isinstance(i, TensorInfo) and i.dtype.is_floating_point}
    now = {t.dtype for t in named_tensors(unwrap(model)).values() if t.is_floating_point()}
    if len(traced) != 1 or len(now) != 1 or traced == now:
        return
    old = next(iter(traced))
    for n in gm.graph.nodes:
        if any(isinstance(a, torch.dtype) and a == old for a in _constants(n)):
            raise RewriteError(
                f"the exported graph casts to {old} at {n.format_node()}, fixed when the model was traced in "
                f"{old}; the model is now {next(iter(now))}", node=n,
                hint="build the search space again after converting the model, or use frontend='fx'")


def _constants(n: fx.Node) -> list:
    out: list = []
    fx.node.map_aggregate((n.args, n.kwargs), lambda a: out.append(a) or a)
    return out


def shrink(gm: fx.GraphModule, model: nn.Module, plan: Plan, registry: Registry | None = None,
           traced_shapes: dict[str, tuple[int, ...]] | None = None) -> tuple[fx.GraphModule, dict[str, str]]:
    """A new compact GraphModule and ``{old node name: new node name}``; inputs are left untouched.

    The compact model takes ``model``'s current tensors (``traced_shapes``: the names and shapes the
    search space was built for) and follows its dtype and device.
    """
    registry = registry or BUILTIN
    model = unwrap(model)
    root = copy.deepcopy(gm)
    _take_tensors(root, model, traced_shapes or {})
    _slice_tensors(root, plan)
    for mod in root.modules():
        resize = registry.resizer(mod)
        if resize is not None:
            resize(mod)
    builder = Builder(gm, root, plan, registry)
    graph = builder.run()
    names = {old.name: new.name for old, new in builder.env.items() if new is not None}
    out = fx.GraphModule(root, graph, type(model).__name__ + "Compact")
    out.graph.eliminate_dead_code(is_impure_node=is_impure)  # in-place calls are uses
    out.recompile()
    return out, names
