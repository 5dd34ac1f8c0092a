"""Side effects of op calls: which calls write into one of their operands (in-place ops).

An in-place op whose result is unused is still a use of the tensor it writes into: dead-code
elimination must keep it, and the analysis must see its effect on that tensor.

Example:
    >>> import torch, torch.fx as fx
    >>> class M(torch.nn.Module):
    ...     def forward(self, x):
    ...         y = x * 2
    ...         y.add_(1.0)
    ...         torch.relu_(y)
    ...         return torch.nn.functional.relu(y, inplace=True)
    >>> gm = fx.symbolic_trace(M())
    >>> [n.name for n in gm.graph.nodes if mutated_operand(n) is not None]
    ['add_', 'relu_', 'relu']
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx

__all__ = ["mutated_operand", "is_impure"]

_IN_PLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
                       operator.ipow, operator.iand, operator.ior, operator.ixor}


def _name(target) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", "")


def mutated_operand(node: fx.Node, module: torch.nn.Module | None = None) -> fx.Node | None:
    """The operand ``node`` writes into (its first tensor argument), or None for a pure call;
    ``module`` is the called module of a ``call_module`` node.

    In place: tensor methods and functions whose name ends in ``_`` (``add_``, ``relu_``, ATen's
    mutable overloads), ``inplace=True`` keyword calls (``F.relu(x, inplace=True)``), modules
    built with ``inplace=True`` (``nn.ReLU(inplace=True)``) and augmented assignment operators.
    """
    if node.op not in ("call_method", "call_function", "call_module") or not node.args:
        return None
    first = node.args[0]
    if not isinstance(first, fx.Node):
        return None
    if node.op == "call_module":
        return first if getattr(module, "inplace", False) is True else None
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return first if target._schema.is_mutable else None
    name = _name(target)
    if (name.endswith("_") and not name.endswith("__")) or target in _IN_PLACE_OPERATORS:
        return first
    return first if node.kwargs.get("inplace") is True else None


def _user_function(target) -> bool:
    """A Python function fx recorded as one call (``torch.fx.wrap``), not a torch or builtin op."""
    if isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)) or not callable(target):
        return False
    return (getattr(target, "__module__", None) or "").split(".")[0] not in _PURE_HOMES


_PURE_HOMES = {"torch", "_operator", "operator", "builtins", "math", "numpy", "collections"}


def is_impure(node: fx.Node) -> bool:
    """For ``Graph.eliminate_dead_code``: fx's own notion, every in-place call, and a call of a
    wrapped Python function whose result is unused: it was made for what it does to its arguments
    (torchvision's MViT calls ``_add_shortcut(x, q)``, which adds into ``x``)."""
    if node.is_impure():
        return True
    if node.op == "call_function" and not node.users and _user_function(node.target):
        return True
    owner = node.graph.owning_module
    module = owner.get_submodule(node.target) if owner is not None and node.op == "call_module" else None
    return mutated_operand(node, module) is not None
