"""Errors raised by otograph.

Every error carries structured fields besides its message, so callers (the CLI included) act on
them without parsing text: ``module`` (the module path involved), ``node`` (the fx node),
``op`` (the op or class), ``hint`` (what to do) and ``detail`` (the underlying error, if any).
``str(e)`` is the message, then ``at node: …`` and ``Fix: …`` lines when those fields are set.

Example:
    >>> e = TraceError("torch.fx could not trace Net", module="blocks.0", hint="declare it a leaf")
    >>> e.module, str(e).splitlines()[-1]
    ('blocks.0', 'Fix: declare it a leaf.')
"""

from __future__ import annotations

from typing import Any

__all__ = ["OtographError", "TraceError", "AnalysisError", "RewriteError", "UnsupportedInput"]


class OtographError(Exception):
    """Root of every otograph error."""

    def __init__(self, message: str, *, module: str | None = None, node: Any = None, op: str | None = None,
                 hint: str | None = None, detail: str | None = None):
        self.message, self.module, self.node, self.op, self.hint, self.detail = message, module, node, op, hint, detail
        text = message
        if node is not None and hasattr(node, "format_node"):
            text += f"\n  at node: {node.format_node()}"
        if hint:
            text += f"\nFix: {hint.rstrip('.')}."
        if detail:
            text += f"\n{detail}"
        super().__init__(text)

    def __reduce__(self):  # picklable across processes (DDP workers, multiprocessing)
        return (_rebuild, (type(self), self.message, self.module, None, self.op, self.hint, self.detail))


def _rebuild(cls, message, module, node, op, hint, detail):
    return cls(message, module=module, node=node, op=op, hint=hint, detail=detail)


class TraceError(OtographError):
    """The model could not be traced; ``module`` names the innermost module that failed."""


class AnalysisError(OtographError):
    """The graph contains something the analysis cannot handle safely."""


class RewriteError(OtographError):
    """The compact model could not be built, or failed its own check."""


class UnsupportedInput(OtographError, ValueError):
    """Example inputs, units or arguments have values otograph cannot use (also a ``ValueError``)."""
