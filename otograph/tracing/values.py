"""Tensor values of a traced graph: what each node produced, example inputs, fake runs.

The small toolbox every layer above tracing uses: the ``node.meta`` key holding each node's
example value (:data:`META`, a :class:`TensorInfo` per tensor), turning example inputs into
``(args, kwargs)``, running a graph on fake tensors, and switching a model to eval mode without
``Module.eval()`` (exported modules refuse it).

Example:
    >>> import torch
    >>> normalize_inputs(torch.zeros(2))[0][0].shape
    torch.Size([2])
    >>> normalize_inputs({"input_ids": torch.zeros(1, 3)})[1].keys()
    dict_keys(['input_ids'])
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch.utils._pytree import tree_map

from otograph.errors import UnsupportedInput

__all__ = ["META", "FLOPS", "SAME_SHAPE", "TensorInfo", "info_of", "normalize_inputs", "flat_inputs", "eval_mode", "fake_mode",
           "run_fake", "fake_state", "meta_state", "swapped_state", "to_meta", "batch_like", "unwrap"]

log = logging.getLogger(__name__)

#: ``node.meta`` key holding the example value's structure: ``torch.Size``/dtype per tensor.
META = "otograph_val"
#: ``node.meta`` key holding the FLOPs ``torch.utils.flop_counter`` counts for the node.
FLOPS = "otograph_flops"


@dataclass(frozen=True)
class TensorInfo:
    """Shape and dtype of a tensor a node produced on the example inputs."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _same_shape_ops() -> frozenset:
    import torch.nn as nn
    import torch.nn.functional as F

    aten = torch.ops.aten
    return frozenset([
        nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm, nn.ReLU, nn.ReLU6, nn.SiLU,
        nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.Mish, nn.Dropout,
        nn.Dropout2d, nn.Identity,
        F.relu, F.relu6, F.silu, F.gelu, F.hardswish, F.hardsigmoid, F.sigmoid, F.layer_norm, F.batch_norm,
        F.group_norm, F.dropout, torch.relu, torch.sigmoid, torch.tanh,
        aten.relu, aten.relu_, aten.silu, aten.silu_, aten.gelu, aten.hardswish, aten.hardswish_,
        aten.hardsigmoid, aten.hardsigmoid_, aten.sigmoid, aten.batch_norm, aten.layer_norm, aten.group_norm,
        aten.dropout, aten.hardtanh, aten.hardtanh_,
    ])


#: Ops (module classes, exactly; functions; ATen packets) whose output has the shape and dtype of their
#: first input and that count no FLOPs: shape recording on meta tensors skips them, because their meta
#: kernels are Python decompositions slower than the rest of the pass. (Checked against a full run.)
SAME_SHAPE = _same_shape_ops()


def info_of(v: Any) -> Any:
    """A value's :class:`TensorInfo` structure (tensors replaced, everything else kept)."""
    def one(x: Any) -> Any:
        return TensorInfo(tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else x

    return tree_map(one, v) if isinstance(v, (tuple, list, dict)) else one(v)


def normalize_inputs(example_inputs: Any) -> tuple[tuple, dict]:
    """Tensor, tuple/list of tensors, or dict of keyword inputs → ``(args, kwargs)``."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, Mapping):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    raise UnsupportedInput(
        f"example_inputs must be a tensor, a tuple of inputs or a dict of keyword inputs, "
        f"not {type(example_inputs).__name__}")


def flat_inputs(gm: fx.GraphModule, args: tuple, kwargs: dict) -> list:
    """Values for the graph's placeholders, in order (handles pytree-flattened exported graphs)."""
    info = getattr(gm.graph._codegen, "pytree_info", None)
    if info is not None and info.in_spec is not None:
        import torch.fx._pytree as fx_pytree

        return list(fx_pytree.tree_flatten_spec((args, kwargs), info.in_spec))
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    args = list(args)
    for n in placeholders[len(args):]:
        if n.target in kwargs:
            args.append(kwargs[n.target])
        elif n.args:
            args.append(n.args[0])
        else:
            raise UnsupportedInput(f"no example value for input {n.target!r}")
    return args


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Every submodule in eval mode for the block, the caller's modes restored after.

    Sets ``training`` directly rather than calling ``model.eval()``: exported (unlifted) modules
    refuse ``eval()``.
    """
    modes = {m: m.training for m in model.modules()}
    for m in modes:
        m.training = False
    try:
        yield
    finally:
        for m, t in modes.items():
            m.training = t


@contextlib.contextmanager
def fake_mode():
    """Shapes without compute: a ``FakeTensorMode`` that accepts the real parameters."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        yield mode


@contextlib.contextmanager
def swapped_state(module: torch.nn.Module, copy: Callable[[torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
    """For the block, every parameter and buffer ``t`` of ``module`` is ``copy(t)`` (``None``: kept).

    The tensors are swapped in the modules' own ``_parameters``/``_buffers`` dicts, as ``torch.func``'s
    reparametrisation does, without its name lookups (several times cheaper, which matters in a
    pass of a few milliseconds); a tensor held in several places gets one copy, so ties stay tied."""
    saved: list[tuple[dict, str, torch.Tensor]] = []
    copies: dict[int, torch.Tensor | None] = {}
    try:
        for mod in module.modules():
            for held in (mod._parameters, mod._buffers):
                for name, t in held.items():
                    if t is None:
                        continue
                    if id(t) not in copies:
                        copies[id(t)] = copy(t)
                    if copies[id(t)] is not None:
                        saved.append((held, name, t))
                        held[name] = copies[id(t)]
        yield
    finally:
        for held, name, t in reversed(saved):
            held[name] = t


def fake_state(module: torch.nn.Module, mode=None) -> contextlib.AbstractContextManager:
    """For the block, ``module``'s parameters and buffers are fake copies (``mode`` given) or, for a
    real run, its buffers are clones: whatever the code writes in place, the real ones stay as
    they were."""
    if mode is not None:
        return swapped_state(module, mode.from_tensor)
    return swapped_state(module, lambda t: None if isinstance(t, torch.nn.Parameter) else t.clone())


def to_meta(x: Any) -> Any:
    """A tensor's meta copy (shape, dtype and autograd flag, no data); anything else unchanged."""
    if isinstance(x, torch.Tensor):
        m = x.detach().to("meta")
        return m.requires_grad_(x.requires_grad) if m.is_floating_point() else m
    return x


def meta_state(module: torch.nn.Module) -> contextlib.AbstractContextManager:
    """For the block, ``module``'s parameters and buffers are meta tensors (shapes only, no data)."""
    return swapped_state(module, to_meta)


def run_fake(interp: fx.Interpreter, inputs: list, *, strict: tuple[type[BaseException], ...] = ()) -> Any:
    """Run ``interp`` on fake copies of ``inputs`` and of its module's tensors; falls back to real
    tensors (buffers cloned) if an op refuses. The module's tensors are never written.

    Exceptions of the ``strict`` types are re-raised instead of falling back.
    """
    try:
        with fake_mode() as mode, fake_state(interp.module, mode):
            fake = [mode.from_tensor(t) if isinstance(t, torch.Tensor) else t for t in inputs]
            return interp.run(*fake)
    except strict:
        raise
    except Exception as e:  # noqa: BLE001 - data-dependent ops cannot run on fake tensors
        log.debug("fake run failed (%s); running for real", e)
        with fake_state(interp.module):
            return interp.run(*inputs)


def batch_like(example_inputs: Any, batch_size: int) -> tuple[tuple, dict]:
    """Random inputs shaped like ``example_inputs`` with the leading (batch) axis set to ``batch_size``.

    Floating tensors are drawn from a fixed seed; integer tensors (token ids) repeat the example's rows.
    """
    args, kwargs = normalize_inputs(example_inputs)

    def grow(x):
        if not isinstance(x, torch.Tensor) or x.ndim == 0:
            return x
        shape = (batch_size, *x.shape[1:])
        if x.is_floating_point():
            return torch.randn(shape, dtype=x.dtype, generator=torch.Generator().manual_seed(0))
        idx = torch.arange(batch_size) % x.shape[0]
        return x[idx]

    return tuple(grow(a) for a in args), {k: grow(v) for k, v in kwargs.items()}


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside ``DataParallel``/``DistributedDataParallel``/``torch.compile`` wrappers."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    while True:
        if isinstance(model, (DataParallel, DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model
