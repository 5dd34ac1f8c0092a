"""What a rule sees: one op application and the vocabulary to state its couplings.

Reading: ``arg`` (by schema name, any spelling), ``slot``/``value``/``shape``/``out_shape(s)``,
``tensor`` (a parameter operand), ``module``. Effects: ``set_out`` (the result's slot), ``union``
(elements removed together), ``union_all``, ``pin``/``pin_slot`` (unprunable, with a reason),
``require_zero`` (slices reaching a mixing consumer must be zero), ``require_one_unit`` (each row
must end up inside a single unit, else it is pinned), ``finer`` (may the op use its finer unit
layout), ``opaque`` (treat this call as unknown),
``param_ids`` (a parameter axis becomes a member), ``flop_axes``, ``vote_grad_free``.
Rules never touch the pass's state directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.fx as fx

from otograph.analysis.slots import Slot, compress
from otograph.graph.signature import Bound, bind
from otograph.tracing.values import META, TensorInfo

if TYPE_CHECKING:
    from otograph.analysis.engine import Analysis
    from otograph.analysis.registry import Rule

__all__ = ["Call"]


class Call:
    """One op application as a rule sees it."""

    def __init__(self, an: Analysis, node: fx.Node, kind: str, rule: Rule):
        self._an = an
        self.node, self.kind, self.rule = node, kind, rule
        self.module = an.modules.get(node.target) if node.op == "call_module" else None
        self.args: Bound = bind(node, self.module)

    # ---- reading ----------------------------------------------------------------------------
    def arg(self, *names: str, default: Any = None) -> Any:
        """The first of ``names`` the call has (given or a schema default), else ``default``."""
        for n in names:
            if n in self.args:
                return self.args[n]
        return default

    def given(self, name: str) -> bool:
        return self.args.given(name)

    @property
    def target_name(self) -> str:
        """The op's own name without namespace or overload: ``unbind`` for ``aten.unbind.int``."""
        t = self.node.target
        name = t if isinstance(t, str) else getattr(t, "__name__", str(t))
        return name.split(".")[0]

    @property
    def is_aten(self) -> bool:
        return isinstance(self.node.target, torch._ops.OpOverload)

    def value(self, x: Any) -> Any:
        """What the analysis holds for an operand: a Slot, or a tuple of them for tuple values."""
        return self._an.slots.get(x) if isinstance(x, fx.Node) else None

    def slot(self, x: Any) -> Slot:
        s = self.value(x)
        return s if isinstance(s, Slot) else Slot()

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
    def out_shapes(self) -> list[tuple[int, ...] | None]:
        """Shapes of the parts of a tuple-valued result (split, chunk, unbind)."""
        info = self.node.meta.get(META)
        return [t.shape if isinstance(t, TensorInfo) else None for t in info] if isinstance(info, (tuple, list)) else []

    @property
    def users(self) -> list[fx.Node]:
        return list(self.node.users)

    @property
    def name(self) -> str:
        if self.node.op == "call_module":
            return f"{type(self.module).__name__} '{self.node.target}'"
        return f"{self.kind} ({self.node.name})"

    def tensor(self, x: Any) -> torch.Tensor | None:
        """The parameter or buffer behind a ``get_attr`` operand (functional/ATen forms)."""
        if isinstance(x, fx.Node) and x.op == "get_attr":
            obj = self._an.gm
            for part in x.target.split("."):
                obj = getattr(obj, part)
            return obj if isinstance(obj, torch.Tensor) else None
        return None

    # ---- effects ------------------------------------------------------------------------------
    def set_out(self, slot: Slot | tuple | None) -> None:
        if isinstance(slot, Slot) and slot.ids is not None:
            slot.ids, slot.zero = compress(slot.ids, slot.zero_or(False))
            self._an.mark_seen(slot.ids)
        self._an.slots[self.node] = slot if slot is not None else Slot()

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        self._an.union(a, b)

    def union_all(self, ids: np.ndarray) -> None:
        """Every element of ``ids`` is one unit."""
        self._an.union_all(ids)

    def union_rows(self, rows: np.ndarray) -> None:
        """Each row of a 2-D array of elements is one unit (one union call for all rows)."""
        self._an.union_rows(rows)

    def mark_seen(self, ids: np.ndarray) -> None:
        """Elements some value carries (a candidate unit even if no op output shows it)."""
        self._an.mark_seen(ids)

    def pin(self, ids: np.ndarray | None, reason: str) -> None:
        self._an.pin(ids, reason)

    def picked_by(self, index: fx.Node, ids: np.ndarray) -> None:
        """Matrices ``ids`` (the first axis of a stacked parameter) are picked by the integer tensor
        ``index``: each matrix is a unit together with the same matrix of every other stack picked
        by that index (MoE experts: gate, up and down of expert e)."""
        first = self._an.picks.setdefault(index, ids)
        if first.shape == ids.shape:
            self.union(first, ids)
        self.mark_seen(ids)

    def pin_slot(self, s: Slot, reason: str) -> None:
        self._an.pin(s.ids, reason)
        for p in s.pax or ():
            self._an.pin(p, reason)

    def require_zero(self, ids: np.ndarray | None, zero: np.ndarray | None, what: str) -> None:
        """Slices reaching a mixing consumer must be exactly zero, else they are pinned."""
        if ids is None:
            return
        z = np.broadcast_to(zero if zero is not None else np.array(False), ids.shape)
        bad = ids[~z]
        if bad.size:
            self._an.pin(bad, f"a non-zero slice reaches {what} {self.name}")

    def require_one_unit(self, rows: np.ndarray, reason: str) -> None:
        """Each row of ``rows`` (elements, ``-1`` = none) must lie inside one unit once all unions are
        known; a row that spans several units or positions no unit owns is pinned with ``reason``."""
        self._an.require_one_unit(rows, f"{reason} {self.name}")

    def require_kept(self, rows: np.ndarray, reason: str) -> None:
        """Each row of ``rows`` (last axis) must keep a position in every compact model: a row all
        of whose units could be removed together has one of them pinned with ``reason``."""
        self._an.require_kept(rows, f"{reason} {self.name}")

    def finer(self, *sides: np.ndarray) -> bool:
        """May this op use its finer unit layout? ``sides``: one element per unit of that layout, for
        each side it offers; if those units end up merged into one, the model is analysed again with
        this op on its coarser layout (and this returns False)."""
        if self.node.name in self._an.coarse:
            return False
        self._an.finer[self.node.name] = [np.asarray(s) for s in sides]
        return True

    def opaque(self, what: str) -> None:
        """Treat this call as an unknown op: every space it touches becomes unprunable."""
        self._an.opaque(self.node, what)

    def param_ids(self, tensor: torch.Tensor, axis: int, role: str) -> np.ndarray:
        name = self._an.canon[id(tensor)]
        return self._an.table.ids(name, axis, tensor.shape[axis], role, isinstance(tensor, torch.nn.Parameter))

    def flop_axes(self, *axes: tuple, share: float = 1.0) -> None:
        """``share`` of this op's FLOPs scales with the kept share of each of ``axes``: pairs of a
        parameter (or a value node) and one of its axes, e.g. a weight's rows and columns."""
        self._an.flop_specs.setdefault(self.node, []).append((share, tuple(axes)))

    def vote_grad_free(self, tensors, axis: int) -> None:
        """Producer rows whose output feeds only an affine per-channel norm get an exactly zero
        gradient once the unit (norm gamma and beta included) is zero: the optimizer need not mask
        them. Every use of a tensor must agree."""
        users = self.users
        ok = False
        if len(users) == 1 and users[0].op == "call_module":
            m = self._an.modules[users[0].target]
            ok = (isinstance(m, torch.nn.modules.batchnorm._NormBase) and m.affine
                  and users[0].args and users[0].args[0] is self.node)
        for t in tensors:
            if t is not None:
                self._an.vote_grad_free(self._an.canon[id(t)], axis, bool(ok))
