"""The config of a shrunk Hugging Face model: standard keys where every layer agrees, and the rest.

A model shrunk in place keeps its original ``config``. :func:`pruned_config` reads the widths its
layers now have (heads of attention modules with ``q_proj``/``k_proj`` and a ``head_dim``, neurons of
gated or plain MLPs), writes each into the standard key when every layer has the same one
(``num_attention_heads``, ``num_key_value_heads``, ``intermediate_size``/``n_inner``, and ``head_dim``
explicitly), then builds the class from that config on the meta device and lists every tensor whose
shape still differs: none means stock ``from_pretrained`` loads the folder. A width the config class
refuses (``transformers`` checks that the hidden size is a multiple of ``num_attention_heads``, even
with an explicit ``head_dim``) is left as it was; the tensors it would have described are listed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["pruned_config", "config_shapes", "tensor_shapes", "layer_widths"]


def _out(m: nn.Module) -> int | None:
    """Output features of a linear-like module (``nn.Linear``, Hugging Face ``Conv1D``)."""
    if isinstance(m, nn.Linear):
        return m.out_features
    nf = getattr(m, "nf", None)
    return nf if isinstance(nf, int) else None


def _attention(m: nn.Module) -> Iterator[tuple[str, int]]:
    head_dim = getattr(m, "head_dim", None)
    q, k = getattr(m, "q_proj", None), getattr(m, "k_proj", None)
    if not isinstance(head_dim, int) or not isinstance(q, nn.Module) or _out(q) is None:
        return
    yield "head_dim", head_dim
    yield "num_attention_heads", _out(q) // head_dim
    if isinstance(k, nn.Module) and _out(k) is not None:
        yield "num_key_value_heads", _out(k) // head_dim


def _mlp(m: nn.Module) -> Iterator[tuple[str, int]]:
    for name in ("up_proj", "gate_proj"):  # LLaMA-style gated MLPs
        child = getattr(m, name, None)
        if isinstance(child, nn.Module) and _out(child) is not None:
            yield "intermediate_size", _out(child)
            return
    if type(m).__name__ == "GPT2MLP":
        yield "n_inner", _out(m.c_fc)
    elif type(m).__name__.endswith("Intermediate") and isinstance(getattr(m, "dense", None), nn.Linear):
        yield "intermediate_size", m.dense.out_features  # BERT and its copies


#: Functions of a module giving ``(config key, width)`` pairs; a key is written when all layers agree.
PROBES: list[Callable[[nn.Module], Iterator[tuple[str, int]]]] = [_attention, _mlp]


def layer_widths(model: nn.Module) -> dict[str, list[int]]:
    """Every width the probes find, per config key, in module order: ``{"intermediate_size": [33, 33]}``."""
    out: dict[str, list[int]] = {}
    for m in model.modules():
        for probe in PROBES:
            for key, value in probe(m):
                out.setdefault(key, []).append(int(value))
    return out


def tensor_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Shapes of what ``model.state_dict()`` holds."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def config_shapes(cls: type, config: Any) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes ``cls`` builds from ``config`` (on the meta device: no memory, no init)."""
    with torch.device("meta"):
        model = cls(copy.deepcopy(config))
    return tensor_shapes(model)


def _valid(config: Any) -> bool:
    validate = getattr(config, "validate", None)
    if validate is None:
        return True
    try:
        validate()
    except Exception:  # noqa: BLE001 - the config class's own checks, whatever they raise
        return False
    return True


def pruned_config(model: nn.Module) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """A copy of ``model.config`` with the widths every layer shares, and the tensors whose shapes that
    config does not give (``{name: shape}``; empty when the standard config describes the model)."""
    config = copy.deepcopy(model.config)
    widths = layer_widths(model)
    for key in ("head_dim", *[k for k in widths if k != "head_dim"]):
        values = set(widths.get(key, ()))
        if len(values) != 1 or not (hasattr(config, key) or key == "head_dim"):
            continue
        old = getattr(config, key, None)
        setattr(config, key, values.pop())
        if not _valid(config):
            setattr(config, key, old)
    built = config_shapes(type(model), config)
    actual = tensor_shapes(model)
    differ = {k: s for k, s in actual.items() if built.get(k) != s}
    return config, differ
