"""The analysis pass: walk the dependency graph once, let each op's rule relate slots.

The pass owns the state (slots per node, unions, pins, element table, costs); rules reach it only
through :class:`~otograph.analysis.call.Call`. Every visited node of the dependency graph is
annotated with its op ``kind`` and ``family`` (``None`` for opaque ops).
"""

from __future__ import annotations

import logging
from typing import Any

import networkx as nx
import numpy as np
import torch
import torch.fx as fx

from otograph.analysis.call import Call
from otograph.analysis.elements import ElementTable
from otograph.analysis.registry import BUILTIN, Registry
from otograph.analysis.slots import Slot, flatten_slots
from otograph.analysis.unionfind import components
from otograph.errors import AnalysisError
from otograph.graph import to_networkx
from otograph.graph.effects import mutated_operand
from otograph.tracing import Traced

__all__ = ["Analysis"]

log = logging.getLogger(__name__)


def _flatten(x: Any) -> list:
    if isinstance(x, (list, tuple)):
        return [y for v in x for y in _flatten(v)]
    if isinstance(x, dict):
        return [y for v in x.values() for y in _flatten(v)]
    return [x]


class Analysis:
    """State of one analysis pass over a traced graph and its dependency graph."""

    def __init__(self, traced: Traced, registry: Registry | None = None, graph: nx.DiGraph | None = None,
                 strict: bool = False, coarse: frozenset = frozenset()):
        self.traced = traced
        #: nodes whose rule must use its coarser unit layout (see :meth:`Call.finer`)
        self.coarse = coarse
        self.finer: dict[str, list[np.ndarray]] = {}
        self.strict = strict
        self.gm = traced.gm
        self.graph = graph if graph is not None else to_networkx(traced)
        self.registry = registry or BUILTIN
        self.modules = dict(self.gm.named_modules())
        self.table = ElementTable()
        self.slots: dict[fx.Node, Any] = {}
        self._ua: list[np.ndarray] = []
        self._ub: list[np.ndarray] = []
        self.pins: list[tuple[np.ndarray, str]] = []
        self.fibers: list[tuple[np.ndarray, str]] = []  # see require_one_unit
        self.kept_rows: list[tuple[np.ndarray, str]] = []  # see require_kept
        self._seen: list[np.ndarray] = []
        #: per index tensor: the first-axis elements of the stacked parameters it picks matrices from
        self.picks: dict[fx.Node, np.ndarray] = {}
        self.opaque_ops: dict[str, str] = {}
        #: per node: ``(share, axes)`` — that share of its FLOPs scales with these axes' kept shares
        self.flop_specs: dict[fx.Node, list[tuple[float, tuple]]] = {}
        self.grad_free: dict[tuple[str, int], bool] = {}  # see Call.vote_grad_free
        self.canon: dict[int, str] = {}
        for name, t in self.gm.named_parameters():
            self.canon.setdefault(id(t), name)
        for name, t in self.gm.named_buffers():
            self.canon.setdefault(id(t), name)

    # ---- primitives (used through Call) -------------------------------------------------------
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

    def union_rows(self, rows: np.ndarray) -> None:
        """Each row of a 2-D array is one unit (rows are independent)."""
        rows = np.asarray(rows)
        if rows.ndim == 2 and rows.shape[1] > 1:
            first = rows[np.arange(rows.shape[0]), np.argmax(rows >= 0, axis=1)][:, None]
            self.union(first, rows)

    def pin(self, ids: np.ndarray | None, reason: str) -> None:
        if ids is None:
            return
        flat = np.asarray(ids).ravel()
        flat = flat[flat >= 0]
        if flat.size:
            self.pins.append((flat, reason))

    def require_one_unit(self, rows: np.ndarray, reason: str) -> None:
        rows = np.asarray(rows)
        rows = rows.reshape(rows.shape[0], -1) if rows.ndim else rows.reshape(1, 1)
        none = (rows < 0).any(1)
        if none.any():  # positions no unit owns can never go with the rest of the row
            self.pin(rows[none], reason)
        if (~none).any():
            self.fibers.append((rows[~none], reason))

    def require_kept(self, rows: np.ndarray, reason: str) -> None:
        rows = np.asarray(rows).reshape(-1, np.asarray(rows).shape[-1] if np.ndim(rows) else 1)
        rows = rows[(rows >= 0).all(1)]  # a position no unit owns always stays
        if rows.size:
            self.kept_rows.append((rows, reason))

    def mark_seen(self, ids: np.ndarray) -> None:
        flat = np.asarray(ids).ravel()
        self._seen.append(flat[flat >= 0])

    def vote_grad_free(self, name: str, axis: int, ok: bool) -> None:
        self.grad_free[(name, axis)] = self.grad_free.get((name, axis), True) and ok

    def collapsed(self) -> frozenset:
        """Nodes whose finer unit layout merged into a single unit on some side (a GroupNorm over a
        grouped conv's output, say): analysed again with their coarser layout, they keep more units."""
        if not self.finer:
            return frozenset()
        ea, eb = self.edges()
        labels = components(self.table.size, ea, eb)
        return frozenset(name for name, sides in self.finer.items()
                         if any(np.unique(labels[ids]).size < 2 for ids in sides))

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._ua:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(self._ua), np.concatenate(self._ub)

    def seen(self) -> np.ndarray:
        """Every element some value carries (with repeats)."""
        return np.concatenate(self._seen) if self._seen else np.zeros(0, np.int64)

    # ---- the pass -----------------------------------------------------------------------------
    def run(self) -> Analysis:
        for name in self.graph.nodes:
            node = self.graph.nodes[name]["fx"]
            try:
                self._visit(node)
            except Exception as e:  # a rule failing must not produce a wrong model: pin instead
                if self.strict:
                    raise AnalysisError(f"the rule for {node.target} failed: {type(e).__name__}: {e}", node=node,
                                        op=self.graph.nodes[node.name].get("kind"),
                                        hint="fix the rule, or register the op as opaque") from e
                log.warning("rule for %s failed (%s); treating it as opaque", node.format_node(), e)
                self.opaque(node, f"{node.target} (rule error: {type(e).__name__}: {e})")
        return self

    def _visit(self, node: fx.Node) -> None:
        attrs = self.graph.nodes[node.name]
        attrs["kind"] = attrs["family"] = None
        if node.op == "placeholder":
            self.slots[node] = Slot()
        elif node.op == "get_attr":
            self.slots[node] = self._attr_slot(node)
        elif node.op == "output":
            for x in _flatten(node.args):
                if isinstance(x, fx.Node):
                    for s in flatten_slots(self.slots.get(x)):
                        self.pin(s.ids, "reaches the model output")
                        for p in s.pax or ():
                            self.pin(p, "reaches the model output")
        else:
            rule = self.registry.rule_of(node, self.modules)
            if rule is None:
                self.opaque(node, _describe(node, self.modules))
                return
            attrs["kind"], attrs["family"] = rule.kind, rule.family
            call = Call(self, node, rule.kind, rule)
            if not rule.accepts_params:
                self._unparam(node, call)
            rule.couple(call)
            if node not in self.slots:
                self.slots[node] = Slot()
            self._write_back(node)

    def _write_back(self, node: fx.Node) -> None:
        """An in-place op writes its result into its operand: later readers of that tensor see the
        op's result. If the op may turn a zero into a non-zero, the tensors its operand may be a
        view of lose their zero flags too (which only makes the analysis more careful)."""
        target = mutated_operand(node, self.modules.get(node.target) if node.op == "call_module" else None)
        out, before = self.slots.get(node), self.slots.get(target)
        if target is None or not isinstance(out, Slot) or not isinstance(before, Slot):
            return
        self.slots[target] = out
        if _keeps_zeros(before, out):
            return
        base = self._viewed(target)
        while base is not None:
            s = self.slots.get(base)
            if isinstance(s, Slot) and s.ids is not None:
                self.slots[base] = s.moved(s.ids, np.zeros(s.ids.shape, bool))
            elif isinstance(s, Slot) and s.pax is not None:
                self.slots[base] = Slot(pax=s.pax, pnames=s.pnames, pzero=False)
            base = self._viewed(base)

    def _viewed(self, node: fx.Node) -> fx.Node | None:
        """The tensor ``node`` may be a view of (layout ops, tuple pieces, aliasing casts)."""
        if node.op not in ("call_method", "call_function") or not node.args or not isinstance(node.args[0], fx.Node):
            return None
        attrs = self.graph.nodes[node.name]
        if attrs.get("family") in ("layout", "composition") or attrs.get("kind") == "unary_zero":
            return node.args[0]
        return None

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

    def opaque(self, node: fx.Node, what: str) -> None:
        """Unknown op: pin every space it touches. One that touches none is harmless and unreported
        (its output carries no channel structure, and the rewriter aligns it where it meets one)."""
        touched = False
        for x in _flatten((node.args, node.kwargs)):
            if isinstance(x, fx.Node):
                for s in flatten_slots(self.slots.get(x)):
                    for ids in (s.ids, *(s.pax or ())):
                        if ids is not None and (ids >= 0).any():
                            self.pin(ids, f"touches the unsupported op {what}")
                            touched = True
        if touched:
            self.opaque_ops.setdefault(node.name, what)
        self.slots[node] = Slot()


def _keeps_zeros(before: Slot, after: Slot) -> bool:
    """Is every position that was zero (once its unit is zeroed) still zero?"""
    if before.pax is not None:
        return after.pax is not None and (after.pzero or not before.pzero)
    if before.ids is None:
        return True
    if after.ids is None:
        return not before.zero.any()
    try:
        return bool(np.all(np.broadcast_to(after.zero, np.broadcast_shapes(after.zero.shape, before.zero.shape))
                           >= before.zero))
    except ValueError:
        return False


def _describe(node: fx.Node, modules: dict) -> str:
    if node.op == "call_module":
        return f"{type(modules[node.target]).__name__} '{node.target}'"
    if node.op == "call_method":
        return f"Tensor.{node.target} ({node.name})"
    t = node.target
    return f"{getattr(t, '__module__', '') or ''}.{getattr(t, '__name__', str(t))} ({node.name})".lstrip(".")
