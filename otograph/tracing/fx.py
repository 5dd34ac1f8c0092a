"""The fx frontend: ``torch.fx`` symbolic tracing through a configurable tracer."""

from __future__ import annotations

import collections
import contextlib
import inspect
import traceback
from collections.abc import Callable, Iterable

import torch
import torch.fx as fx
from torch.utils._pytree import tree_flatten

from otograph.errors import TraceError

__all__ = ["fx_graph", "autograd_call"]


class _Tracer(fx.Tracer):
    # Buffers are graph values like parameters: otherwise fx runs ops on them eagerly at trace time
    # and bakes the results in as constants (stale once the buffer changes, and an in-place update
    # of the buffer in forward is lost).
    proxy_buffer_attributes = True

    def __init__(self, leaf_modules: Iterable, autowrap: Iterable[Callable]):
        super().__init__(autowrap_functions=tuple(f for f in autowrap if callable(f)))
        self._leaf_types = tuple(t for t in leaf_modules if isinstance(t, type))
        self._leaf_names = {t for t in leaf_modules if isinstance(t, str)}
        self.current_module = ""
        self.failed_module: str | None = None
        self.output_type: type | None = None  # of the last value made an argument: the output's
        self._depth = 0

    def create_arg(self, a):
        self._depth += 1
        try:
            return super().create_arg(a)
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.output_type = type(a)

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


_CALLS: dict[type, Callable] = {}


def autograd_call(fn: type[torch.autograd.Function]) -> Callable:
    """A plain function calling ``fn.apply``, named after ``fn``: how a custom autograd function is
    recorded, as one call (opaque to the analysis), so the compact model keeps its backward."""
    if fn not in _CALLS:
        def call(*args, **kwargs):
            return fn.apply(*args, **kwargs)

        call.__name__ = call.__qualname__ = f"{fn.__name__}_apply"
        call.__module__ = fn.__module__
        _CALLS[fn] = call
    return _CALLS[fn]


@contextlib.contextmanager
def _recording_effects(tracer: fx.Tracer):
    """While tracing: custom ``autograd.Function`` calls become single nodes (not their forward's
    ops), and ``torch.no_grad()``/``enable_grad()``/``set_grad_enabled()`` blocks are recorded as
    grad-mode switches that restore the mode found at run time."""
    function = torch.autograd.function.Function
    orig_apply = function.__dict__["apply"]

    def apply(cls, *args, **kwargs):
        leaves = tree_flatten((args, kwargs))[0]
        if any(isinstance(a, fx.Proxy) for a in leaves):
            return tracer.create_proxy("call_function", autograd_call(cls), args, kwargs)
        return orig_apply.__get__(None, cls)(*args, **kwargs)

    stack: list[fx.Node] = []
    busy = [False]  # inside one of our switches: nested grad-mode calls are its implementation
    # fx adds the node of an attribute read (``x.mT``) when the attribute is first used: read before
    # a grad-mode switch and used after it, the view would run in the other mode. Such reads get
    # their node at the switch (method calls, ``x.relu()``, never need one).
    pending: list[fx.proxy.Attribute] = []
    attribute = fx.proxy.Attribute
    orig_init, orig_call = attribute.__dict__["__init__"], attribute.__dict__["__call__"]

    def init(self, root, attr):
        orig_init(self, root, attr)
        pending.append(self)

    def call(self, *args, **kwargs):
        self._otograph_called = True
        return orig_call(self, *args, **kwargs)

    settled: list[fx.Node] = []

    def settle() -> None:
        for a in pending:
            if a._node is None and not a.__dict__.get("_otograph_called"):  # (getattr would trace)
                settled.append(a.node)
        pending.clear()

    def recorded(action, orig):
        def wrapper(self, *a, **k):
            if busy[0]:
                return orig(self, *a, **k)
            busy[0] = True
            try:
                action(self, *a)
                return orig(self, *a, **k)
            finally:
                busy[0] = False
        return wrapper

    def switch(mode: bool):
        def action(self, *a):
            settle()
            stack.append(tracer.graph.call_function(torch.is_grad_enabled))
            tracer.graph.call_function(torch._C._set_grad_enabled, (bool(a[0]) if mode is None else mode,))
        return action

    def restore(self, *a) -> None:
        settle()
        if stack:
            tracer.graph.call_function(torch._C._set_grad_enabled, (stack.pop(),))

    patched = []

    def patch(cls, name, action):
        orig = cls.__dict__[name]
        patched.append((cls, name, orig))
        setattr(cls, name, recorded(action, orig))

    function.apply = classmethod(apply)
    attribute.__init__, attribute.__call__ = init, call
    try:
        patch(torch.no_grad, "__enter__", switch(False))
        patch(torch.no_grad, "__exit__", restore)
        patch(torch.enable_grad, "__enter__", switch(True))
        patch(torch.enable_grad, "__exit__", restore)
        patch(torch.set_grad_enabled, "__init__", switch(None))  # the mode is its first argument
        patch(torch.set_grad_enabled, "__exit__", restore)
        yield
        for n in settled:  # read and never used
            if not n.users:
                tracer.graph.erase_node(n)
    finally:
        function.apply = orig_apply
        attribute.__init__, attribute.__call__ = orig_init, orig_call
        for cls, name, orig in reversed(patched):
            setattr(cls, name, orig)


@contextlib.contextmanager
def _recording_buffer_updates(tracer: fx.Tracer):
    """While tracing: ``self.count += 1`` on a buffer (a rebinding to a traced value) is recorded as an
    in-place copy into the buffer, as ``torch.export`` records it, so the compact model keeps it."""
    module_setattr = torch.nn.Module.__setattr__

    def setattr_(self, name, value):
        if isinstance(value, fx.Proxy) and name in self.__dict__.get("_buffers", {}):
            prefix = tracer.path_of_module(self) if self is not tracer.root else ""
            buffer = tracer.create_proxy("get_attr", f"{prefix}.{name}" if prefix else name, (), {})
            tracer.create_proxy("call_method", "copy_", (buffer, value), {})
            return
        module_setattr(self, name, value)

    torch.nn.Module.__setattr__ = setattr_
    try:
        yield
    finally:
        torch.nn.Module.__setattr__ = module_setattr


def fx_graph(model: torch.nn.Module, args: tuple, kwargs: dict, *, leaf_modules: Iterable = (),
             autowrap: Iterable[Callable] = ()) -> fx.GraphModule:
    """Symbolically trace ``model`` (in its current mode); the module path is named on failure."""
    tracer = _Tracer(leaf_modules, autowrap)
    concrete = _concrete_args(model, args, kwargs)
    try:
        with _recording_effects(tracer), _recording_buffer_updates(tracer):
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
    _keep_output_type(graph, tracer.output_type)
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def _keep_output_type(graph: fx.Graph, cls: type | None) -> None:
    """fx turns an ``OrderedDict`` output into a plain dict: one call rebuilds it (torchvision's
    segmentation models and detector backbones return one)."""
    out = next(n for n in reversed(graph.nodes) if n.op == "output")
    value = out.args[0]
    if cls is not collections.OrderedDict or not isinstance(value, dict):
        return
    with graph.inserting_before(out):
        od = graph.call_function(collections.OrderedDict, ([(k, v) for k, v in value.items()],))  # keys: any str
    out.args = (od,)


def _concrete_args(model, args, kwargs) -> dict:
    """Forward parameters the caller did not give are fixed to their defaults."""
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return {}
    params = [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    given = {p.name for p in params[: len(args)]} | set(kwargs)
    return {p.name: p.default for p in params if p.name not in given and p.default is not p.empty}
