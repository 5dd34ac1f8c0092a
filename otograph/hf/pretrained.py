"""Save a shrunk Hugging Face model as a folder ``transformers`` loads, and load it back.

:func:`save_pretrained` writes the model's own ``save_pretrained`` files (``config.json``,
``model.safetensors``, ``generation_config.json``) with a config describing the pruned widths (see
:mod:`otograph.hf.config`). When every layer of a kind keeps the same width, that is a standard config
and stock ``AutoModelForCausalLM.from_pretrained(folder)`` loads it. Otherwise ``config.json`` also
holds ``otograph_pruned``: the shape of every tensor the standard keys do not give, and
:func:`from_pretrained` builds the class from the config, gives those tensors their shapes, updates
the modules' size attributes (the same rules as in-place shrinking) and loads the weights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from otograph.errors import OtographError
from otograph.fileio import staged_dir
from otograph.hf.config import pruned_config
from otograph.rewrite.inplace import resize_modules

__all__ = ["save_pretrained", "from_pretrained", "KEY", "HFError", "is_standard"]

log = logging.getLogger(__name__)

#: The ``config.json`` key holding per-tensor shapes of a model with per-layer widths.
KEY = "otograph_pruned"


class HFError(OtographError):
    """A Hugging Face folder could not be written or read as a pruned model."""


@contextlib.contextmanager
def _config_swapped(model: nn.Module, config: Any) -> Iterator[None]:
    old = model.config
    model.config = config
    try:
        yield
    finally:
        model.config = old


def save_pretrained(model: nn.Module, path: str | os.PathLike, *, overwrite: bool = False,
                    **kwargs: Any) -> dict[str, Any]:
    """Write ``model`` (a ``transformers`` model, shrunk in place) to the folder ``path``.

    The folder is written beside ``path`` and renamed into place (an existing one is refused unless
    ``overwrite``). ``kwargs`` go to the model's ``save_pretrained`` (``max_shard_size`` …). Returns
    ``{"standard": bool, "per_layer": {tensor: shape}}``: standard means stock ``from_pretrained`` loads it.
    """
    if not callable(getattr(model, "save_pretrained", None)) or not hasattr(model, "config"):
        raise HFError(f"{type(model).__name__} is not a Hugging Face model (it has no save_pretrained/config)",
                      hint="shrink the transformers model in place: otograph.compress(model, space, units, inplace=True)")
    config, differ = pruned_config(model)
    if differ:
        setattr(config, KEY, {"format": 1, "shapes": {k: list(s) for k, s in sorted(differ.items())}})
        log.info("per-layer widths: %d tensors have shapes the standard config does not give", len(differ))
    with staged_dir(path, force=overwrite) as stage, _config_swapped(model, config):
        model.save_pretrained(stage, **kwargs)
    return {"standard": not differ, "per_layer": differ}


def is_standard(path: str | os.PathLike) -> bool:
    """Does stock ``from_pretrained`` load the folder (no per-layer widths)?"""
    return KEY not in json.loads((Path(path) / "config.json").read_text())


def _model_class(config: Any, model_class: type | None) -> type:
    if model_class is not None:
        return model_class
    import transformers

    for name in getattr(config, "architectures", None) or ():
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    raise HFError(f"config.json names no transformers class ({getattr(config, 'architectures', None)})",
                  hint="pass model_class=, e.g. transformers.LlamaForCausalLM")


def _give_shapes(model: nn.Module, shapes: dict[str, list[int]]) -> None:
    """Replace each named tensor (all its tied names) by an empty one of the given shape."""
    where: dict[int, list[tuple[nn.Module, str]]] = {}
    for mod in model.modules():
        for attr, t in list(mod._parameters.items()) + list(mod._buffers.items()):
            if t is not None:
                where.setdefault(id(t), []).append((mod, attr))
    named = dict(model.named_parameters(remove_duplicate=False))
    named.update(model.named_buffers(remove_duplicate=False))
    for name, shape in shapes.items():
        t = named.get(name)
        if t is None:
            raise HFError(f"config.json gives a shape for {name!r}, which {type(model).__name__} does not have")
        new = torch.empty(tuple(shape), dtype=t.dtype, device=t.device)
        repl = nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new
        for mod, attr in where[id(t)]:
            (mod._parameters if attr in mod._parameters else mod._buffers)[attr] = repl


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    index = path / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out: dict[str, torch.Tensor] = {}
    for f in files:
        if not (path / f).exists():
            raise HFError(f"{path}: {f} is missing", hint="save the model with otograph.hf.save_pretrained")
        out.update(load_file(str(path / f)))
    return out


def from_pretrained(path: str | os.PathLike, *, model_class: type | None = None,
                    device: str | torch.device | None = None) -> nn.Module:
    """Load a folder written by :func:`save_pretrained` (standard or per-layer widths), in eval mode.

    The class is ``model_class`` or the first of ``config.architectures``; tensors keep the dtype they
    were saved in. A standard folder is loaded by the class's own ``from_pretrained``.
    """
    from transformers import AutoConfig, GenerationConfig

    path = Path(path)
    if not (path / "config.json").exists():
        raise HFError(f"{path} has no config.json", hint="name a folder written by otograph.hf.save_pretrained")
    config = AutoConfig.from_pretrained(path)
    cls = _model_class(config, model_class)
    info = getattr(config, KEY, None)
    if info is None:
        return cls.from_pretrained(path, dtype="auto", device_map=device).eval()
    shapes = info["shapes"]
    model = cls._from_config(config)
    _give_shapes(model, shapes)
    resize_modules(model, shapes)
    state = _weights(path)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    tied = set(_tied_keys(model))
    still = [k for k in missing if k not in tied]
    if still or unexpected:
        raise HFError(f"{path}: the weights do not fit {cls.__name__}: missing {still[:5]}, unexpected "
                      f"{list(unexpected)[:5]}")
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    if len(dtypes) == 1:
        model.to(dtypes.pop())
    if (path / "generation_config.json").exists():
        model.generation_config = GenerationConfig.from_pretrained(path)
    if device is not None:
        model.to(device)
    return model.eval()


def _tied_keys(model: nn.Module) -> list[str]:
    keys = getattr(model, "_tied_weights_keys", None) or {}
    names = list(keys) if isinstance(keys, dict) else list(keys)
    sd = model.state_dict()
    return [k for k in names if k in sd]
