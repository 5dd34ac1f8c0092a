"""Build the compact ``GraphModule``: slice parameters, fix module attributes and shape constants.

The original model is never touched: parameters are copied, the graph is copied, and every size
that the code carries (view/reshape/expand shapes, split sizes, slice bounds, attention scale)
is rewritten from the plan. Operands that no unit owns but that meet a shrinking axis (graph
inputs, buffers, constants) are gathered with ``index_select`` at run time.
"""

from __future__ import annotations

import copy
import math
import operator
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from otograph.analysis.rules.layout import expand_index
from otograph.analysis.rules.registry import default_registry
from otograph.analysis.space import named_tensors
from otograph.errors import RewriteError
from otograph.rewrite.modules import resize_module
from otograph.rewrite.plan import Plan
from otograph.tracing.values import META, TensorInfo

__all__ = ["shrink"]

_JOIN_KINDS = {"add", "mul", "div", "where", "masked_fill", "cat", "matmul"}
_SHAPE_ARGS = {"view", "reshape", "expand"}
_ATEN_SHAPE = {"view", "reshape", "_unsafe_view", "expand"}


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
        new = t.detach()
        for axis, keep in cuts:
            new = new.index_select(axis, torch.as_tensor(keep, device=t.device))
        new = new.clone()
        repl = nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new
        for mod, attr in where[id(t)]:
            if attr in mod._parameters:
                mod._parameters[attr] = repl
            else:
                mod._buffers[attr] = repl


def _shape(node: Any) -> tuple[int, ...] | None:
    info = node.meta.get(META) if isinstance(node, fx.Node) else None
    return info.shape if isinstance(info, TensorInfo) else None


class _Builder:
    def __init__(self, gm: fx.GraphModule, root: nn.Module, plan: Plan):
        self.old, self.root, self.plan = gm, root, plan
        self.graph = fx.Graph()
        self.graph._codegen = copy.deepcopy(gm.graph._codegen)  # pytree in/out specs of exported graphs
        self.env: dict[fx.Node, fx.Node] = {}
        self.n_keep = 0
        self.tuples: dict[fx.Node, tuple] = {}  # tuple-valued nodes replaced by several nodes
        self.modules = dict(gm.named_modules())

    def keep_index(self, keep: np.ndarray) -> fx.Node:
        name = f"_otograph_keep_{self.n_keep}"
        self.n_keep += 1
        self.root.register_buffer(name, torch.as_tensor(np.nonzero(keep)[0], dtype=torch.long))
        return self.graph.get_attr(name)

    def run(self) -> fx.Graph:
        reg = default_registry()
        for node in self.old.graph.nodes:
            if node.target is operator.getitem and node.args[0] in self.tuples:
                self.env[node] = self.tuples[node.args[0]][node.args[1]]
                continue
            new = self.graph.node_copy(node, lambda n: self.env[n])
            new.meta = dict(node.meta)
            self.env[node] = new
            kind = reg.kind_of(node, self.modules) if node.op.startswith("call") else None
            if kind in _JOIN_KINDS:
                self.align_foreign(node, new, kind)
            self.fix_sizes(node, new, kind)
            rule = reg.rules.get(kind) if kind else None
            if rule is not None and rule.shrink is not None:
                rule.shrink(self, node, new)
        return self.graph

    # ---- operands no unit owns ------------------------------------------------------------
    def align_foreign(self, node: fx.Node, new: fx.Node, kind: str) -> None:
        out_shape = _shape(node)
        if out_shape is None:
            return
        keep = self.plan.keep(node)
        if kind == "cat":
            axis = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0) % len(out_shape)
            operands = list(node.args[0])
        elif kind == "matmul":
            self.align_matmul(node, new)
            return
        else:
            axis = None
            operands = [a for a in list(node.args) + list(node.kwargs.values()) if isinstance(a, fx.Node)]
        for x in operands:
            shp = _shape(x)
            if shp is None or x in self.plan.param_values:
                continue
            off = len(out_shape) - len(shp)
            own = self.plan.keep(x)
            cur = self.env[x]
            for a, k in keep.items():
                if a == axis or a < off or shp[a - off] == 1 or (a - off) in own:
                    continue
                with self.graph.inserting_before(new):
                    cur = self.graph.call_function(torch.index_select, (cur, a - off, self.keep_index(k)))
            if cur is not self.env[x]:
                new.replace_input_with(self.env[x], cur)

    def align_matmul(self, node: fx.Node, new: fx.Node) -> None:
        a, b = node.args[0], node.args[1]
        for x, other, k_axis in ((a, b, -1), (b, a, -2)):
            if not isinstance(x, fx.Node) or self.plan.keep(x) or not isinstance(other, fx.Node):
                continue
            ok = self.plan.keep(other)
            o_axis = (len(_shape(other)) + (-2 if k_axis == -1 else -1))
            if o_axis in ok:
                with self.graph.inserting_before(new):
                    idx = self.keep_index(ok[o_axis])
                    g = self.graph.call_function(torch.index_select, (self.env[x], len(_shape(x)) + k_axis, idx))
                new.replace_input_with(self.env[x], g)

    # ---- sizes carried by the code ----------------------------------------------------------
    def fix_sizes(self, node: fx.Node, new: fx.Node, kind: str | None) -> None:
        tgt = node.target
        name = tgt if isinstance(tgt, str) else getattr(tgt, "__name__", "")
        aten_name = name.split(".")[0] if isinstance(tgt, torch._ops.OpOverload) else None
        if node.op == "call_method" and name in _SHAPE_ARGS or tgt is torch.reshape or aten_name in _ATEN_SHAPE:
            self._fix_shape_args(node, new)
        elif aten_name == "slice":
            self._fix_slice(node, new)
        elif aten_name == "select":
            self._fix_select(node, new)
        elif kind == "split":
            self._fix_split(node, new, name)
        elif tgt is operator.getitem and _shape(node.args[0]) is not None:
            self._fix_getitem(node, new)
        elif kind == "narrow":
            self._fix_narrow(node, new)
        elif kind in ("conv", "conv_transpose") and node.op == "call_function":
            self._fix_conv_groups(node, new, kind)
        elif kind == "groupnorm" and node.op == "call_function":
            self._fix_group_norm(node, new)
        elif tgt is F.scaled_dot_product_attention or aten_name == "scaled_dot_product_attention":
            q = node.args[0]
            qk = self.plan.keep(q)
            if len(_shape(q)) - 1 in qk and new.kwargs.get("scale") is None:
                new.kwargs = {**new.kwargs, "scale": 1.0 / math.sqrt(_shape(q)[-1])}
        elif kind == "reshape" and name.split(".")[0] == "unflatten":
            self._fix_unflatten(node, new)

    def _fix_shape_args(self, node: fx.Node, new: fx.Node) -> None:
        shape = _shape(node)
        keep = self.plan.keep(node)
        if shape is None or not keep:
            return
        new_shape = self.plan.new_shape(node, shape)
        args = list(new.args[1:])
        packed = len(args) == 1 and isinstance(args[0], (tuple, list))
        sizes = list(args[0]) if packed else args
        if len(sizes) != len(shape):
            raise RewriteError(f"cannot match the shape arguments of {node.format_node()}")
        for a in keep:
            # channel sizes are static: a size computed at run time (x.shape[2]) may come from a
            # tensor that does not shrink, so it is replaced by the constant as well
            if sizes[a] != -1:
                sizes[a] = new_shape[a]
        new.args = (new.args[0], tuple(sizes)) if packed else (new.args[0], *sizes)

    def _fix_unflatten(self, node: fx.Node, new: fx.Node) -> None:
        """``unflatten(x, dim, sizes)``: the sizes are the output's axes dim … dim+len(sizes)-1."""
        shape = _shape(node)
        if not self.plan.keep(node) or shape is None:
            return
        x, dim, sizes = node.args[0], node.args[1], node.args[2]
        d = dim % len(_shape(x))
        new_shape = self.plan.new_shape(node, shape)
        sizes = [s if s == -1 else new_shape[d + i] for i, s in enumerate(sizes)]
        new.args = (new.args[0], dim, tuple(sizes) if isinstance(node.args[2], tuple) else sizes)

    def _fix_split(self, node: fx.Node, new: fx.Node, name: str) -> None:
        x = node.args[0]
        xk = self.plan.keep(x)
        if not xk:
            return
        outs = node.meta[META]
        nd = len(_shape(x))
        if name == "unbind":
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0) % nd
            if dim in xk:
                raise RewriteError(f"unbind over a shrinking axis: {node.format_node()}")
            return
        dim = node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0) % nd
        if dim not in xk:
            return
        k = xk[dim]
        sizes, start = [], 0
        for t in outs:
            n = t.shape[dim]
            sizes.append(int(k[start:start + n].sum()))
            start += n
        if any(s == 0 for s in sizes):
            raise RewriteError(f"a piece of {node.format_node()} would be empty")
        new.target = torch.split if node.op == "call_function" else "split"
        new.args = (new.args[0], sizes, dim)
        new.kwargs = {}

    def _fix_conv_groups(self, node: fx.Node, new: fx.Node, kind: str) -> None:
        """Functional/ATen grouped convolutions carry ``groups`` as an argument: whole groups go."""
        pos = 6
        groups = node.args[pos] if len(node.args) > pos else node.kwargs.get("groups", 1)
        w = node.args[1]
        if groups == 1 or not isinstance(w, fx.Node) or w.op != "get_attr":
            return
        rows = self.plan.params.get((w.target, 0))
        if rows is None:
            return
        per = _shape(w)[0] // groups
        new_groups = len(rows) // per
        args = list(new.args)
        if len(args) > pos:
            args[pos] = new_groups
            new.args = tuple(args)
        else:
            new.kwargs = {**new.kwargs, "groups": new_groups}

    def _fix_group_norm(self, node: fx.Node, new: fx.Node) -> None:
        x, groups = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs["num_groups"]
        keep = self.plan.keep(x).get(1)
        if keep is None:
            return
        new_groups = int(keep.sum()) // (_shape(x)[1] // groups)
        if len(new.args) > 1:
            new.args = (new.args[0], new_groups, *new.args[2:])
        else:
            new.kwargs = {**new.kwargs, "num_groups": new_groups}

    def _fix_slice(self, node: fx.Node, new: fx.Node) -> None:
        x, dim = node.args[0], node.args[1] if len(node.args) > 1 else 0
        start = node.args[2] if len(node.args) > 2 else None
        end = node.args[3] if len(node.args) > 3 else None
        step = node.args[4] if len(node.args) > 4 else 1
        shape = _shape(x)
        keep = self.plan.keep(x).get(dim % len(shape))
        if keep is None:
            return
        if step != 1 or not all(v is None or isinstance(v, int) for v in (start, end)):
            raise RewriteError(f"cannot rewrite {node.format_node()} over a shrinking axis")
        lo, hi, _ = slice(start, end).indices(shape[dim % len(shape)])
        new.args = (new.args[0], dim, int(keep[:lo].sum()), int(keep[:hi].sum()))

    def _fix_select(self, node: fx.Node, new: fx.Node) -> None:
        x, dim, i = node.args[:3]
        shape = _shape(x)
        keep = self.plan.keep(x).get(dim % len(shape))
        if keep is None:
            return
        j = i % shape[dim % len(shape)]
        if not keep[j]:
            raise RewriteError(f"{node.format_node()} selects a removed position")
        new.args = (new.args[0], dim, int(keep[:j].sum()))

    def _fix_narrow(self, node: fx.Node, new: fx.Node) -> None:
        x, dim, start, length = (list(node.args) + [node.kwargs.get(k) for k in ("dim", "start", "length")])[:4]
        keep = self.plan.keep(x).get(dim % len(_shape(x)))
        if keep is None:
            return
        if not isinstance(start, int) or not isinstance(length, int):
            raise RewriteError(f"cannot rewrite {node.format_node()}: dynamic bounds on a shrinking axis")
        new.args = (new.args[0], dim, int(keep[:start].sum()), int(keep[start:start + length].sum()))
        new.kwargs = {}

    def _fix_getitem(self, node: fx.Node, new: fx.Node) -> None:
        x, idx = node.args
        xk = self.plan.keep(x)
        if not xk:
            return
        shape = _shape(x)
        idx = expand_index(idx, len(shape))
        out, ax = [], 0
        for i in idx:
            if i is None:
                out.append(i)
                continue
            if ax in xk and not (isinstance(i, slice) and i == slice(None)):
                keep = xk[ax]
                rank = np.cumsum(keep) - 1
                if isinstance(i, int):
                    j = i % shape[ax]
                    if not keep[j]:
                        raise RewriteError(f"{node.format_node()} selects a removed position")
                    i = int(rank[j])
                elif isinstance(i, slice) and (i.step in (None, 1)):
                    lo, hi, _ = i.indices(shape[ax])
                    i = slice(int(keep[:lo].sum()), int(keep[:hi].sum()))
                else:
                    raise RewriteError(f"cannot rewrite the index of {node.format_node()}")
            out.append(i)
            ax += 1
        new.args = (new.args[0], tuple(out) if len(out) != 1 else out[0])


def shrink(gm: fx.GraphModule, model: nn.Module, plan: Plan) -> tuple[fx.GraphModule, dict[str, str]]:
    """A new compact GraphModule and ``{old node name: new node name}``; inputs are left untouched."""
    root = copy.deepcopy(gm)
    src = named_tensors(model)
    with torch.no_grad():
        for name, t in list(root.named_parameters(remove_duplicate=False)) + list(
                root.named_buffers(remove_duplicate=False)):
            s = src.get(name)
            if s is not None and s.shape == t.shape:
                t.copy_(s)
    _slice_tensors(root, plan)
    for mod in root.modules():
        resize_module(mod)
    builder = _Builder(gm, root, plan)
    graph = builder.run()
    names = {old.name: new.name for old, new in builder.env.items() if new is not None}
    out = fx.GraphModule(root, graph, type(model).__name__ + "Compact")
    out.graph.eliminate_dead_code()
    out.recompile()
    return out, names
