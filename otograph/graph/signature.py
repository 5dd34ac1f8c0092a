"""Arguments of an fx op call, by schema name.

One op has many spellings (``x.view(2, 3)``, ``torch.reshape(x, (2, 3))``, ``aten.view(x, [2, 3])``)
whose arguments sit at different positions. :func:`bind` finds the call's schema (an ATen
overload's schema, a torch builtin's signatures, a Python function's or a module's ``forward``
signature) and maps each argument to its name, so rules read ``args["dim"]`` and write
``args.set(node, "size", ...)`` without knowing the spelling. The first argument is called
``input`` whatever the schema calls it (``self``, ``tensor``, ``a``). A list-typed argument given
as separate positional values (``x.view(2, 3)``, ``x.permute(0, 2, 1)``) is read as one tuple and
written back the same way.

Example:
    >>> import torch, torch.fx as fx
    >>> class M(torch.nn.Module):
    ...     def forward(self, x):
    ...         return torch.split(x.view(2, 6).permute(1, 0), 2, dim=1)
    >>> gm = fx.symbolic_trace(M())
    >>> view, permute, split = [n for n in gm.graph.nodes if n.op.startswith("call")]
    >>> bind(view)["size"], bind(permute)["dims"], bind(split)["dim"], bind(split)["input"] is permute
    ((2, 6), (1, 0), 1, True)
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import torch
import torch.fx as fx

__all__ = ["Bound", "bind"]

_FIRST = {"self", "tensor", "a", "x", "input"}
_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class _Param:
    name: str
    positional: bool = True   # may be given by position
    is_list: bool = False     # a list type: separate positional values are packed
    variadic: bool = False    # *args
    default: Any = _EMPTY
    is_bool: bool = False     # a bool in the schema: an int given there belongs to another overload


_Sig = tuple[_Param, ...]

#: Python operators and builtins have no schema: their argument names, once.
_OPERATORS: dict[Any, _Sig] = {
    **{op: (_Param("input"), _Param("other")) for op in (
        operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
        operator.pow, operator.matmul, operator.iadd, operator.isub, operator.imul, operator.itruediv,
        operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge, operator.and_,
        operator.or_)},
    operator.getitem: (_Param("input"), _Param("index")),
    operator.neg: (_Param("input"),),
    getattr: (_Param("input"), _Param("name")),
}


class Bound(Mapping):
    """A call's arguments by name; ``where[name]`` is ``("arg", i)``, ``("pack", i)`` or ``("kw", key)``."""

    def __init__(self, node: fx.Node, where: dict[str, tuple[str, Any]], defaults: dict[str, Any]):
        self._node, self.where, self.defaults = node, where, defaults

    def read(self, node: fx.Node, name: str) -> Any:
        """Argument ``name`` of ``node``, a copy of the bound node (same argument layout)."""
        how, at = self.where[name]
        if how == "arg":
            return node.args[at]
        if how == "pack":
            return tuple(node.args[at:])
        return node.kwargs[at]

    def __getitem__(self, name: str) -> Any:
        if name in self.where:
            return self.read(self._node, name)
        if name in self.defaults:
            return self.defaults[name]
        raise KeyError(name)

    def __iter__(self):
        return iter(self.where)

    def __len__(self) -> int:
        return len(self.where)

    def given(self, name: str) -> bool:
        """Was ``name`` passed explicitly (not a schema default)?"""
        return name in self.where

    def set(self, node: fx.Node, name: str, value: Any) -> None:
        """Write ``name`` into ``node`` (a copy of the bound node) where the call holds it."""
        if name not in self.where:
            node.kwargs = {**node.kwargs, name: value}
            return
        how, at = self.where[name]
        if how == "arg":
            node.args = (*node.args[:at], value, *node.args[at + 1:])
        elif how == "pack":
            node.args = (*node.args[:at], *value)
        else:
            node.kwargs = {**node.kwargs, at: value}

    def __repr__(self) -> str:
        return f"Bound({', '.join(f'{k}={self[k]!r}' for k in self.where)})"


def bind(node: fx.Node, module: torch.nn.Module | None = None) -> Bound:
    """The arguments of ``node`` (a ``call_*`` node) by name; ``module`` for ``call_module`` nodes."""
    sigs = _signatures(node, module)
    for sig in sigs:
        b = _bind(sig, node.args, node.kwargs)
        if b is not None:
            return Bound(node, *b)
    # no schema fits: positions get generic names, keywords keep theirs
    where = {("input" if i == 0 else f"arg{i}"): ("arg", i) for i in range(len(node.args))}
    where.update({k: ("kw", k) for k in node.kwargs})
    return Bound(node, where, {})


def _bind(sig: _Sig, args: tuple, kwargs: dict) -> tuple[dict, dict] | None:
    where: dict[str, tuple[str, Any]] = {}
    positional = [p for p in sig if p.positional and not p.variadic]
    variadic = next((p for p in sig if p.variadic), None)
    n = len(args)
    if n > len(positional):
        if variadic is not None:
            for i, p in enumerate(positional):
                where[p.name] = ("arg", i)
            where[variadic.name] = ("pack", len(positional))
        elif positional and positional[-1].is_list and not kwargs.keys() & {positional[-1].name}:
            last = len(positional) - 1
            for i, p in enumerate(positional[:last]):
                where[p.name] = ("arg", i)
            where[positional[last].name] = ("pack", last)
        else:
            return None
    else:
        for i in range(n):
            if positional[i].is_bool and not isinstance(args[i], (bool, fx.Node)):
                return None  # x.var(1) is var(dim=1), not var(unbiased=1)
            where[positional[i].name] = ("arg", i)
    names = {p.name for p in sig}
    for k in kwargs:
        key = _canonical(k, sig)
        if key not in names and k not in names or key in where:
            return None
        where[key] = ("kw", k)
    for p in sig:  # every required argument must be there
        if p.default is _EMPTY and not p.variadic and p.name not in where:
            return None
    defaults = {p.name: p.default for p in sig if p.default is not _EMPTY and p.name not in where}
    return where, defaults


def _canonical(key: str, sig: _Sig) -> str:
    return "input" if sig and sig[0].name == "input" and key in _FIRST else key


def _signatures(node: fx.Node, module: torch.nn.Module | None) -> list[_Sig]:
    if node.op == "call_module":
        if module is None:
            return []
        try:
            return _forward_sigs(type(module).forward)
        except TypeError:  # an unhashable forward
            return _python_sigs(type(module).forward, skip_self=True)
    if node.op == "call_method":
        return _method_sigs(node.target)
    target = node.target
    if target in _OPERATORS:
        return [_OPERATORS[target]]
    if isinstance(target, torch._ops.OpOverload):
        return [_schema_sig(target._schema)]
    if isinstance(target, torch._ops.OpOverloadPacket):
        return _packet_sigs(target)
    return _function_sigs(target)


@cache
def _method_sigs(name: str) -> list[_Sig]:
    packet = getattr(torch.ops.aten, name, None)
    if isinstance(packet, torch._ops.OpOverloadPacket):
        return _packet_sigs(packet, method=True)
    fn = getattr(torch, name, None)
    return _function_sigs(fn) if fn is not None else []


def _packet_sigs(packet: torch._ops.OpOverloadPacket, method: bool = False) -> list[_Sig]:
    out = []
    for name in packet.overloads():
        try:
            out.append(_schema_sig(getattr(packet, name)._schema, method))
        except (AttributeError, RuntimeError):
            continue
    return out


def _schema_sig(schema, method: bool = False) -> _Sig:
    """An ATen schema's arguments; ``self`` is called ``input``, and comes first for a tensor method."""
    params = []
    for i, a in enumerate(schema.arguments):
        if a.name == "out":
            continue
        name = "input" if a.name == "self" or (i == 0 and a.name in _FIRST) else a.name
        default = a.default_value if a.has_default_value() else _EMPTY
        params.append(_Param(name, not a.kwarg_only, "List" in str(a.type), False, default, str(a.type) == "bool"))
    if method:
        params.sort(key=lambda p: p.name != "input")
    return tuple(params)


@lru_cache(maxsize=1024)  # bounded: fx makes a class (and a forward) per GraphModule
def _forward_sigs(forward: Any) -> list[_Sig]:
    """A module class's ``forward`` (``self`` skipped), read once per class: every call of the layer
    binds against it."""
    return _python_sigs(forward, skip_self=True)


def _function_sigs(fn: Any) -> list[_Sig]:
    try:
        return _function_sigs_cached(fn)
    except TypeError:  # unhashable callables
        return _python_sigs(fn, skip_self=False)


@cache
def _function_sigs_cached(fn: Any) -> list[_Sig]:
    sigs = _python_sigs(fn, skip_self=False)
    if sigs:
        return sigs
    from torch.fx.operator_schemas import get_signature_for_torch_op

    try:
        found = get_signature_for_torch_op(fn) or []
    except Exception:  # noqa: BLE001 - a builtin torch does not describe
        found = []
    return [_from_inspect(s, False) for s in found]


def _python_sigs(fn: Any, skip_self: bool) -> list[_Sig]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [_from_inspect(sig, skip_self)]


def _from_inspect(sig: inspect.Signature, skip_self: bool) -> _Sig:
    params = []
    items = list(sig.parameters.values())[1 if skip_self else 0:]
    for i, p in enumerate(items):
        if p.kind is p.VAR_KEYWORD:
            continue
        name = "input" if i == 0 and p.name in _FIRST else p.name
        ann = str(p.annotation)
        params.append(_Param(name, p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD),
                             "List" in ann or "list" in ann or "Sequence" in ann or "tuple" in ann,
                             p.kind is p.VAR_POSITIONAL, p.default))
    return tuple(params)
