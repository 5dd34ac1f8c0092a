"""The op registry: one :class:`Rule` per canonical op kind, owning everything about that op.

A rule carries every spelling of its op (module classes, ``torch``/functional callables,
``"method:NAME"`` tensor methods, ATen overload packets), how it couples slots (analysis), how it
is rewritten in the compact graph (sizes in its arguments, operands to gather) and how the
attributes of its modules follow their sliced parameters. Anything without a rule is *opaque*:
every space it touches becomes unprunable and the op is reported by name.

Built-in rules live in ``otograph.analysis.rules`` (one file per family) and fill :data:`BUILTIN`.
Users extend a copy: ``Registry()`` starts as a copy of the built-in rules; registering a target
that already has a rule raises unless ``replace=True`` is given.

Example:
    >>> import torch
    >>> ops = Registry()
    >>> ops.kind_of_target(torch.nn.Conv2d), ops.rule("conv").family
    ('conv', 'producer')
    >>> ops.register_op(torch.nn.Conv2d, "unary")
    Traceback (most recent call last):
    ...
    KeyError: "<class 'torch.nn.modules.conv.Conv2d'> already has the rule 'conv'; pass replace=True to replace it"
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx

__all__ = ["Rule", "Registry", "BUILTIN", "FAMILIES", "USER_FAMILIES", "rule", "register_op"]

#: Rule families; each has one file in ``otograph/analysis/rules/`` named after it.
FAMILIES = ("producer", "passthrough", "elementwise", "layout", "composition", "contraction", "coupling",
            "attention", "meta")


@dataclass(frozen=True)
class Rule:
    """Everything otograph knows about one op kind.

    ``couple(call)`` relates the slots of the op's operands and result (see
    :class:`~otograph.analysis.call.Call`); ``rewrite(edit)`` fixes the op's copy in the compact graph
    (see :class:`~otograph.rewrite.edit.Edit`); ``resize(module)`` updates the size attributes of
    one of its modules after the parameters were sliced. ``accepts_params``: the op may see
    parameters directly (``get_attr`` operands), else such operands are pinned.
    """

    kind: str
    family: str
    couple: Callable[..., None]
    targets: tuple = ()
    rewrite: Callable[..., None] | None = None
    resize: Callable[[torch.nn.Module], None] | None = None
    accepts_params: bool = False

    def __repr__(self) -> str:
        return f"Rule({self.kind!r}, family={self.family!r}, {len(self.targets)} spellings)"


class Registry:
    """``kind → Rule`` and ``target → kind``. ``Registry()`` is a copy of the built-in rules;
    ``Registry(empty=True)`` has none."""

    def __init__(self, *, empty: bool = False):
        self.rules: dict[str, Rule] = {} if empty else dict(BUILTIN.rules)
        self.kinds: dict[Any, str] = {} if empty else dict(BUILTIN.kinds)

    def copy(self) -> Registry:
        new = Registry(empty=True)
        new.rules, new.kinds = dict(self.rules), dict(self.kinds)
        return new

    def add(self, r: Rule) -> Rule:
        """Add a rule and its spellings; a kind or a spelling registered twice is an error."""
        if r.family not in FAMILIES:
            raise ValueError(f"unknown family {r.family!r}; one of {FAMILIES}")
        if r.kind in self.rules:
            raise KeyError(f"op kind {r.kind!r} is already registered ({self.rules[r.kind]})")
        for t in r.targets:
            if t in self.kinds:
                raise KeyError(f"{t!r} is already registered as op kind {self.kinds[t]!r}")
        self.rules[r.kind] = r
        for t in r.targets:
            self.kinds[t] = r.kind
        return r

    def rule(self, kind: str) -> Rule:
        return self.rules[kind]

    def kind_of_target(self, target: Any) -> str | None:
        kind = self.kinds.get(target)
        if kind is None and isinstance(target, torch._ops.OpOverload):  # an overload → its packet
            kind = self.kinds.get(target.overloadpacket)
        return kind

    def kind_of(self, node: fx.Node, modules: dict[str, torch.nn.Module]) -> str | None:
        """The canonical kind of a ``call_*`` node, or None (opaque)."""
        if node.op == "call_module":
            return self.kinds.get(type(modules[node.target])) or self.kinds.get(node.target)
        if node.op == "call_method":
            return self.kinds.get("method:" + node.target)
        if node.op == "call_function":
            return self.kind_of_target(node.target)
        return None

    def rule_of(self, node: fx.Node, modules: dict[str, torch.nn.Module]) -> Rule | None:
        kind = self.kind_of(node, modules)
        return self.rules.get(kind) if kind is not None else None

    def resizer(self, module: torch.nn.Module) -> Callable[[torch.nn.Module], None] | None:
        """The ``resize`` of the rule for ``module``'s class or its nearest registered base class."""
        for cls in type(module).__mro__:
            kind = self.kinds.get(cls)
            if kind is not None and self.rules[kind].resize is not None:
                return self.rules[kind].resize
        return None

    def register_op(self, target: Any, family: str, *, replace: bool = False) -> None:
        """Teach this registry a custom module class or function by naming its behaviour.

        ``family`` is one of :data:`USER_FAMILIES`: ``"unary"`` (elementwise, f(0) = 0),
        ``"unary_nonzero"`` (elementwise, f(0) may be ≠ 0), ``"add"``, ``"mul"``, ``"passthrough"``
        (returns its input unchanged in shape and zeros) or ``"opaque"`` (every space it touches is
        unprunable). A target that already has a rule is refused unless ``replace=True``.
        """
        if family not in USER_FAMILIES:
            raise ValueError(f"unknown family {family!r}; choose one of {sorted(USER_FAMILIES)}")
        if target in self.kinds and not replace:
            raise KeyError(f"{target!r} already has the rule {self.kinds[target]!r}; pass replace=True to "
                           f"replace it")
        self.kinds[target] = USER_FAMILIES[family]

    def __repr__(self) -> str:
        return f"Registry({len(self.rules)} rules, {len(self.kinds)} spellings)"


#: The built-in rules (filled when ``otograph.analysis.rules`` is imported). Change it only on
#: purpose: every analysis that is not given a registry uses it.
BUILTIN = Registry(empty=True)

#: The families a user can name for a custom op, and the built-in kind implementing each.
USER_FAMILIES = {
    "unary": "unary_zero",
    "unary_nonzero": "unary",
    "add": "add",
    "mul": "mul",
    "passthrough": "identity",
    "opaque": "opaque",  # a kind with no rule: treated like an unknown op, but named on purpose
}


def rule(family: str):
    """A decorator factory for one family's file: ``@producer("conv", [nn.Conv2d, …])``.

    The decorated function is the rule's ``couple``; ``rewrite``, ``resize`` and ``accepts_params``
    are keywords. The rule is added to :data:`BUILTIN`.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")

    def register(kind: str, targets: Iterable[Any] = (), *, rewrite: Callable | None = None,
                 resize: Callable | None = None, accepts_params: bool = False):
        def deco(couple: Callable[..., None]) -> Callable[..., None]:
            BUILTIN.add(Rule(kind, family, couple, tuple(targets), rewrite, resize, accepts_params))
            return couple

        return deco

    return register


def register_op(target: Any, family: str, *, registry: Registry, replace: bool = False) -> None:
    """``registry.register_op(target, family)``: teach ``registry`` (yours, e.g. ``Registry()``) a
    custom op. To change the built-in rules for every analysis, pass ``registry=BUILTIN`` explicitly.

    Example:
        >>> import torch, otograph
        >>> class Swish2(torch.nn.Module):          # an activation otograph does not know
        ...     def forward(self, x):
        ...         return x * torch.sigmoid(2 * x)
        >>> ops = otograph.Registry()               # a copy of the built-in rules
        >>> otograph.register_op(Swish2, "unary", registry=ops)   # Swish2(0) == 0, elementwise
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), Swish2(), torch.nn.Linear(8, 2))
        >>> space = otograph.search_space(net, torch.randn(2, 4), leaf_modules=[Swish2], registry=ops)
        >>> [(g.id, g.prunable) for g in space.groups if g.num_units == 8]
        [('0', True)]
    """
    registry.register_op(target, family, replace=replace)
