"""The op registry: one table ``canonical op kind → Rule``, plus ``target → kind``.

A rule couples slots (analysis) and, where the op carries sizes, shrinks them (rewrite); both
live on the same record so they cannot drift. Anything without a rule is opaque: every space it
touches becomes unprunable and the op is reported by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Rule", "RULES", "KINDS", "register", "register_op", "kind_of", "FAMILIES", "Registry"]

FAMILIES = ("producer", "consumer", "passthrough", "elementwise", "layout", "composition",
            "contraction", "coupling", "meta", "opaque")


@dataclass(frozen=True)
class Rule:
    """How one op kind couples the slots of its inputs and output, and how it shrinks."""

    kind: str
    family: str
    couple: Callable[..., None]
    shrink: Callable[..., None] | None = None
    accepts_params: bool = False  # may see parameters directly (get_attr values) as operands

    def __repr__(self) -> str:
        return f"Rule({self.kind!r}, family={self.family!r})"


class Registry:
    """Two tables: ``kind → Rule`` and ``target → kind``. Registering a key twice is an error."""

    def __init__(self, rules: dict | None = None, kinds: dict | None = None):
        self.rules: dict[str, Rule] = dict(rules or {})
        self.kinds: dict[Any, str] = dict(kinds or {})

    def copy(self) -> Registry:
        return Registry(self.rules, self.kinds)

    def add_rule(self, rule: Rule) -> None:
        if rule.kind in self.rules:
            raise KeyError(f"op kind {rule.kind!r} is already registered ({self.rules[rule.kind]})")
        self.rules[rule.kind] = rule

    def add_targets(self, kind: str, targets: Iterable[Any], *, override: bool = False) -> None:
        for t in targets:
            if t in self.kinds and self.kinds[t] != kind and not override:
                raise KeyError(f"{t!r} is already registered as op kind {self.kinds[t]!r}")
            self.kinds[t] = kind

    def kind_of(self, node: torch.fx.Node, modules: dict[str, torch.nn.Module]) -> str | None:
        if node.op == "call_module":
            return self.kinds.get(type(modules[node.target])) or self.kinds.get(node.target)
        if node.op == "call_method":
            return self.kinds.get("method:" + node.target)
        if node.op == "call_function":
            kind = self.kinds.get(node.target)
            packet = getattr(node.target, "overloadpacket", None)  # ATen overload → its packet
            return kind if kind is not None or packet is None else self.kinds.get(packet)
        return None


_GLOBAL = Registry()
RULES = _GLOBAL.rules
KINDS = _GLOBAL.kinds


def register(kind: str, family: str, targets: Iterable[Any] = (), *, shrink=None,
             accepts_params: bool = False, registry: Registry | None = None):
    """Decorator: register ``couple`` as the rule for ``kind`` and map ``targets`` to it."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")
    reg = registry or _GLOBAL

    def deco(couple: Callable[..., None]):
        reg.add_rule(Rule(kind, family, couple, shrink, accepts_params))
        reg.add_targets(kind, targets)
        return couple

    return deco


#: The families a user can name for a custom op, and the built-in kind implementing each.
USER_FAMILIES = {
    "unary": "unary_zero",          # elementwise, f(0) == 0 (ReLU-like): zeros stay zeros
    "unary_nonzero": "unary",       # elementwise, f(0) may be != 0 (sigmoid-like)
    "add": "add",                   # elementwise sum of broadcast operands
    "mul": "mul",                   # elementwise product of broadcast operands
    "passthrough": "identity",      # returns its first input unchanged in shape and zeros
    "opaque": None,                 # nothing known: every space it touches is unprunable
}


def register_op(target: Any, family: str, *, registry: Registry | None = None) -> None:
    """Teach otograph a custom module class or function by naming its rule family.

    ``family`` is one of ``"unary"`` (elementwise with f(0) = 0), ``"unary_nonzero"``,
    ``"add"``, ``"mul"``, ``"passthrough"`` or ``"opaque"``. Register the module class as a
    leaf when tracing (``leaf_modules=[MyAct]``) or a function via ``autowrap=[fn]``.

    Example:
        >>> import torch, otograph
        >>> class Swish2(torch.nn.Module):          # an activation otograph does not know
        ...     def forward(self, x):
        ...         return x * torch.sigmoid(2 * x)
        >>> otograph.register_op(Swish2, "unary")   # Swish2(0) == 0, elementwise
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), Swish2(), torch.nn.Linear(8, 2))
        >>> space = otograph.search_space(net, torch.randn(2, 4), leaf_modules=[Swish2])
        >>> [(g.id, g.prunable) for g in space.groups if g.num_units == 8]
        [('0', True)]
    """
    if family not in USER_FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {sorted(USER_FAMILIES)}")
    reg = registry or _GLOBAL
    kind = USER_FAMILIES[family]
    if kind is None:
        reg.kinds.pop(target, None)
        return
    reg.add_targets(kind, [target], override=True)


def kind_of(node: torch.fx.Node, modules: dict[str, torch.nn.Module]) -> str | None:
    return _GLOBAL.kind_of(node, modules)


def default_registry() -> Registry:
    return _GLOBAL
