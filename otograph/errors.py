"""Errors raised by otograph. Every one names the module/op involved and what to do."""

from __future__ import annotations

__all__ = ["OtographError", "TraceError", "AnalysisError", "RewriteError", "UnsupportedInput"]


class OtographError(Exception):
    """Root of every otograph error."""


class TraceError(OtographError):
    """The model could not be traced; the message names the module and suggests a fix."""


class AnalysisError(OtographError):
    """The graph contains something the analysis cannot handle safely."""

    def __init__(self, message: str, node=None):
        if node is not None:
            message = f"{message}\n  at node: {node.format_node()}"
        super().__init__(message)
        self.node = node


class RewriteError(OtographError):
    """The compact model could not be built, or failed its own shape check."""


class UnsupportedInput(OtographError):
    """Example inputs or arguments are not of a supported form."""
