"""``--weights FILE``: start pruning from a model the user trained, given as a ``state_dict`` file.

The file is read with ``torch.load(..., weights_only=True)`` (no code runs) and must match the model
key for key and shape for shape; anything else is refused in one line naming the missing and
unexpected keys and the shapes that differ. A checkpoint that wraps the state dict under
``"state_dict"`` or ``"model"`` (Lightning, many training scripts) and the ``module.`` prefix DDP adds
are accepted.

Example:
    >>> import tempfile, torch
    >>> path = tempfile.mkdtemp() + "/w.pt"
    >>> torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    >>> load_weights(torch.nn.Linear(3, 2), path)
    >>> load_weights(torch.nn.Linear(4, 2), path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    otograph.cli.specs.SpecError: --weights ...: does not fit the model (Linear): shapes differ: weight (file (2, 3), model (2, 4))
    Fix: give the state dict of this very architecture (the same model spec and ?k=v options, e.g. num_classes).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from otograph.cli.specs import SpecError

__all__ = ["load_weights", "read_state_dict"]

_WRAPPERS = ("state_dict", "model")
_SHOWN = 4


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``state_dict`` file, read with ``weights_only=True``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise SpecError(f"--weights {path}: no such file", hint="give a file written by torch.save(model.state_dict(), FILE)")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - not a torch file, or one that needs code to unpickle
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecError(f"--weights {path}: not a state dict torch.load can read with weights_only=True ({first[:160]})",
                        hint="save the weights with torch.save(model.state_dict(), FILE), not the whole model") from None
    for key in _WRAPPERS:  # {"state_dict": {...}, "epoch": 3, ...}
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping) and not _is_tensors(data):
            data = data[key]
            break
    if not (isinstance(data, Mapping) and data and _is_tensors(data)):
        raise SpecError(f"--weights {path}: holds {type(data).__name__}, not a state dict (names → tensors)",
                        hint="save the weights with torch.save(model.state_dict(), FILE)")
    return dict(data)


def _is_tensors(data: Mapping) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items())


def _listed(keys: list[str]) -> str:
    more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load the ``state_dict`` file ``path`` into ``model`` (in place), exactly: every key, every shape."""
    state = read_state_dict(path)
    want = model.state_dict()
    if not set(state) & set(want) and all(k.startswith("module.") for k in state):  # saved from a DDP wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [f"{k} (file {tuple(state[k].shape)}, model {tuple(v.shape)})"
              for k, v in want.items() if k in state and state[k].shape != v.shape]
    problems = [f"{label}: {_listed(keys)}" for label, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("shapes differ", shapes)) if keys]
    if problems:
        raise SpecError(f"--weights {path}: does not fit the model ({type(model).__name__}): {'; '.join(problems)}",
                        hint="give the state dict of this very architecture (the same model spec and ?k=v options, "
                             "e.g. num_classes)")
    model.load_state_dict(state)
