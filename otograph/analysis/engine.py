"""The analysis pass: walk the graph once, let each op's rule relate slots, collect unions and pins.

Rules see a :class:`Call` and use a small vocabulary on it: ``slot``/``shape`` to read operands,
``union`` to state that elements must be removed together, ``pin`` to make elements
unprunable with a reason, ``require_zero`` for slices that reach a mixing consumer, ``param_ids``
to make a parameter axis a member, and ``set_out`` for the result's slot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from otograph.analysis.elements import ElementTable
from otograph.analysis.rules.registry import Registry, Rule, default_registry
from otograph.analysis.slots import Slot, compress
from otograph.tracing import META, TensorInfo, Traced

__all__ = ["Analysis", "Call"]

log = logging.getLogger(__name__)


def _flatten(x: Any) -> list:
    if isinstance(x, (list, tuple)):
        return [y for v in x for y in _flatten(v)]
    if isinstance(x, dict):
        return [y for v in x.values() for y in _flatten(v)]
    return [x]


class Call:
    """One op application as a rule sees it."""

    def __init__(self, an: Analysis, node: fx.Node, kind: str, rule: Rule):
        self.an, self.node, self.kind, self.rule = an, node, kind, rule
        self.module = an.modules.get(node.target) if node.op == "call_module" else None
        self.kind_src = "aten" if isinstance(node.target, torch._ops.OpOverload) else "torch"

    # ---- operands -----------------------------------------------------------------------
    def arg(self, i: int, name: str | None = None, default: Any = None) -> Any:
        """Argument by position (after ``self`` for methods) or keyword ``name``."""
        if name is not None and name in self.node.kwargs:
            return self.node.kwargs[name]
        if i < len(self.node.args):
            return self.node.args[i]
        return default

    def slot(self, x: Any) -> Slot:
        if isinstance(x, fx.Node):
            s = self.an.slots.get(x)
            return s if isinstance(s, Slot) else Slot()
        return Slot()

    def shape(self, x: Any) -> tuple[int, ...] | None:
        info = x.meta.get(META) if isinstance(x, fx.Node) else None
        if isinstance(info, TensorInfo):
            return info.shape
        if isinstance(x, torch.Tensor):
            return tuple(x.shape)
        return None

    @property
    def out_shape(self) -> tuple[int, ...] | None:
        return self.shape(self.node)

    @property
    def name(self) -> str:
        if self.node.op == "call_module":
            return f"{type(self.module).__name__} '{self.node.target}'"
        return f"{self.kind} ({self.node.name})"

    # ---- effects ------------------------------------------------------------------------
    def set_out(self, slot: Slot | tuple | None) -> None:
        if isinstance(slot, Slot) and slot.ids is not None:
            slot.ids, slot.zero = compress(slot.ids, slot.zero_or(False))
            self.an.mark_seen(slot.ids)
        self.an.slots[self.node] = slot if slot is not None else Slot()

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        self.an.union(a, b)

    def pin(self, ids: np.ndarray | None, reason: str) -> None:
        self.an.pin(ids, reason)

    def pin_slot(self, s: Slot, reason: str) -> None:
        self.an.pin(s.ids, reason)
        for p in s.pax or ():
            self.an.pin(p, reason)

    def require_zero(self, ids: np.ndarray | None, zero: np.ndarray | None, what: str) -> None:
        """Slices reaching a mixing consumer must be exactly zero, else they are pinned."""
        if ids is None:
            return
        z = np.broadcast_to(zero if zero is not None else np.array(False), ids.shape)
        bad = ids[~z]
        if bad.size:
            self.an.pin(bad, f"a non-zero slice reaches {what} {self.name}")

    def tensor(self, x: Any) -> torch.Tensor | None:
        """The parameter or buffer behind a ``get_attr`` operand (functional/ATen forms)."""
        if isinstance(x, fx.Node) and x.op == "get_attr":
            obj = self.an.gm
            for part in x.target.split("."):
                obj = getattr(obj, part)
            return obj if isinstance(obj, torch.Tensor) else None
        return None

    def add_flops(self, weight: torch.Tensor, out_elems: int, out_channels: int) -> None:
        """Multiply-adds of a weight op: each output element costs ``2·weight.numel()/out_channels``."""
        name = self.an.canon[id(weight)]
        self.an.weight_flops[name] = self.an.weight_flops.get(name, 0.0) + 2.0 * out_elems * (
            weight.numel() / max(1, out_channels))

    def vote_grad_free(self, tensors, axis: int) -> None:
        """Producer rows whose output feeds only an affine per-channel norm get an exactly zero
        gradient once the unit (norm gamma and beta included) is zero: the optimizer need not mask
        them. Every use of a tensor must agree."""
        users = list(self.node.users)
        ok = False
        if len(users) == 1 and users[0].op == "call_module":
            m = self.an.modules[users[0].target]
            ok = (isinstance(m, torch.nn.modules.batchnorm._NormBase) and m.affine
                  and users[0].args and users[0].args[0] is self.node)
        for t in tensors:
            if t is not None:
                key = (self.an.canon[id(t)], axis)
                self.an.grad_free[key] = self.an.grad_free.get(key, True) and bool(ok)

    def param_ids(self, tensor: torch.Tensor, axis: int, role: str) -> np.ndarray:
        name = self.an.canon[id(tensor)]
        is_param = isinstance(tensor, torch.nn.Parameter)
        return self.an.table.ids(name, axis, tensor.shape[axis], role, is_param)


class Analysis:
    """State of one analysis pass over a traced graph."""

    def __init__(self, traced: Traced, registry: Registry | None = None):
        self.traced = traced
        self.gm = traced.gm
        self.registry = registry or default_registry()
        self.modules = dict(self.gm.named_modules())
        self.table = ElementTable()
        self.slots: dict[fx.Node, Any] = {}
        self._ua: list[np.ndarray] = []
        self._ub: list[np.ndarray] = []
        self.pins: list[tuple[np.ndarray, str]] = []
        self._seen: list[np.ndarray] = []
        self.opaque: dict[str, str] = {}
        self.weight_flops: dict[str, float] = {}  # FLOPs of the ops each weight takes part in
        self.grad_free: dict[tuple[str, int], bool] = {}  # see Call.vote_grad_free
        self.canon: dict[int, str] = {}
        for name, t in self.gm.named_parameters():
            self.canon.setdefault(id(t), name)
        for name, t in self.gm.named_buffers():
            self.canon.setdefault(id(t), name)

    # ---- primitives ---------------------------------------------------------------------
    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
        ok = (a >= 0) & (b >= 0) & (a != b)
        if ok.any():
            self._ua.append(a[ok].ravel())
            self._ub.append(b[ok].ravel())

    def union_all(self, ids: np.ndarray) -> None:
        flat = np.asarray(ids).ravel()
        flat = flat[flat >= 0]
        if flat.size > 1:
            self.union(flat[:1], flat[1:])

    def pin(self, ids: np.ndarray | None, reason: str) -> None:
        if ids is None:
            return
        flat = np.unique(np.asarray(ids).ravel())
        flat = flat[flat >= 0]
        if flat.size:
            self.pins.append((flat, reason))

    def mark_seen(self, ids: np.ndarray) -> None:
        flat = np.unique(ids)
        self._seen.append(flat[flat >= 0])

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._ua:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(self._ua), np.concatenate(self._ub)

    def seen(self) -> np.ndarray:
        return np.unique(np.concatenate(self._seen)) if self._seen else np.zeros(0, np.int64)

    # ---- the pass -----------------------------------------------------------------------
    def run(self) -> Analysis:
        for node in self.gm.graph.nodes:
            try:
                self._visit(node)
            except Exception as e:  # a rule failing must not produce a wrong model: pin instead
                log.warning("rule for %s failed (%s); treating it as opaque", node.format_node(), e)
                self._opaque(node, f"{node.target} (rule error: {type(e).__name__}: {e})")
        return self

    def _visit(self, node: fx.Node) -> None:
        if node.op == "placeholder":
            self.slots[node] = Slot()
        elif node.op == "get_attr":
            self.slots[node] = self._attr_slot(node)
        elif node.op == "output":
            for x in _flatten(node.args):
                if isinstance(x, fx.Node):
                    for s in _slots_of(self.slots.get(x)):
                        self.pin(s.ids, "reaches the model output")
                        for p in s.pax or ():
                            self.pin(p, "reaches the model output")
        else:
            kind = self.registry.kind_of(node, self.modules)
            rule = self.registry.rules.get(kind) if kind else None
            if rule is None:
                self._opaque(node, _describe(node, self.modules))
                return
            call = Call(self, node, kind, rule)
            if not rule.accepts_params:
                self._unparam(node, call)
            rule.couple(call)
            if node not in self.slots:
                self.slots[node] = Slot()

    def _attr_slot(self, node: fx.Node) -> Slot:
        obj = self.gm
        for part in node.target.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, torch.Tensor) and obj.ndim > 0 and obj.is_floating_point() and id(obj) in self.canon:
            name = self.canon[id(obj)]
            is_param = isinstance(obj, torch.nn.Parameter)
            role = "producer" if is_param else "buffer"
            pax = tuple(self.table.ids(name, a, obj.shape[a], role, is_param) if obj.shape[a] > 1 else None
                        for a in range(obj.ndim))
            return Slot(pax=pax, pnames=(name,), pzero=is_param)
        return Slot()

    def _unparam(self, node: fx.Node, call: Call) -> None:
        """Ops that do not understand parameter operands: pin those parameters' axes."""
        for x in _flatten((node.args, node.kwargs)):
            if isinstance(x, fx.Node):
                s = self.slots.get(x)
                if isinstance(s, Slot) and s.pax is not None:
                    for p in s.pax:
                        self.pin(p, f"parameter {s.pnames[0]} is used directly by {call.name}")
                    self.slots[x] = Slot()  # pinned: from now on it is a plain constant

    def _opaque(self, node: fx.Node, what: str) -> None:
        """Unknown op: pin every space it touches. One that touches none is harmless and unreported
        (its output carries no channel structure, and the rewriter aligns it where it meets one)."""
        touched = False
        for x in _flatten((node.args, node.kwargs)):
            if isinstance(x, fx.Node):
                for s in _slots_of(self.slots.get(x)):
                    for ids in (s.ids, *(s.pax or ())):
                        if ids is not None and (ids >= 0).any():
                            self.pin(ids, f"touches the unsupported op {what}")
                            touched = True
        if touched:
            self.opaque.setdefault(node.name, what)
        self.slots[node] = Slot()


def _slots_of(s: Any) -> Sequence[Slot]:
    if isinstance(s, Slot):
        return [s]
    if isinstance(s, (tuple, list)):
        return [y for v in s for y in _slots_of(v)]
    return []


def _describe(node: fx.Node, modules: dict) -> str:
    if node.op == "call_module":
        return f"{type(modules[node.target]).__name__} '{node.target}'"
    if node.op == "call_method":
        return f"Tensor.{node.target} ({node.name})"
    t = node.target
    return f"{getattr(t, '__module__', '') or ''}.{getattr(t, '__name__', str(t))} ({node.name})".lstrip(".")
