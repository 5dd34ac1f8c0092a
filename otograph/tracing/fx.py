"""The fx frontend: ``torch.fx`` symbolic tracing through a configurable tracer."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Iterable

import torch
import torch.fx as fx

from otograph.errors import TraceError

__all__ = ["fx_graph"]


class _Tracer(fx.Tracer):
    def __init__(self, leaf_modules: Iterable, autowrap: Iterable[Callable]):
        super().__init__(autowrap_functions=tuple(f for f in autowrap if callable(f)))
        self._leaf_types = tuple(t for t in leaf_modules if isinstance(t, type))
        self._leaf_names = {t for t in leaf_modules if isinstance(t, str)}
        self.current_module = ""
        self.failed_module: str | None = None

    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        if isinstance(m, self._leaf_types) or qualname in self._leaf_names:
            return True
        return super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        prev = self.current_module
        self.current_module = self.path_of_module(m)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_module is None:  # the innermost module is the one to name
                self.failed_module = self.current_module
            raise
        finally:
            self.current_module = prev


def fx_graph(model: torch.nn.Module, args: tuple, kwargs: dict, *, leaf_modules: Iterable = (),
             autowrap: Iterable[Callable] = ()) -> fx.GraphModule:
    """Symbolically trace ``model`` (in its current mode); the module path is named on failure."""
    tracer = _Tracer(leaf_modules, autowrap)
    concrete = _concrete_args(model, args, kwargs)
    try:
        graph = tracer.trace(model, concrete_args=concrete or None)
    except Exception as e:  # noqa: BLE001 - re-raised with the module and the fix
        where = tracer.failed_module or "<root>"
        raise TraceError(
            f"torch.fx could not trace {type(model).__name__} inside module {where!r}: {type(e).__name__}: {e}",
            module=where, op=type(model).__name__,
            hint=(f"declare it a leaf (trace(..., leaf_modules=[{where!r}]) or its class), or wrap the "
                  f"offending function (autowrap=[fn]), or use the export frontend (frontend='export' or "
                  f"'auto')"),
            detail="".join(traceback.format_exception_only(type(e), e)).strip()) from e
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def _concrete_args(model, args, kwargs) -> dict:
    """Forward parameters the caller did not give are fixed to their defaults."""
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return {}
    params = [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    given = {p.name for p in params[: len(args)]} | set(kwargs)
    return {p.name: p.default for p in params if p.name not in given and p.default is not p.empty}
