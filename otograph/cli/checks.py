"""Checks the prune job makes before any work, so that a run that cannot succeed fails at once with
one line that says why and what to do, instead of a traceback or a silently wrong model."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

import otograph
from otograph.cli.specs import (
    DataError,
    LoadedData,
    LoadedModel,
    SpecError,
    frontend_for,
    resolve_leaves,
    to_eval,
)
from otograph.errors import OtographError

__all__ = ["check_trainable", "check_data", "traced_space", "model_error", "batch_pair"]

log = logging.getLogger(__name__)

_STANDALONE = '"""Compact model written by otograph'  # the first line of a model.py that rebuilds the model


def check_trainable(loaded: LoadedModel) -> None:
    """Refuse a model that cannot be trained as it is: a saved ``.pt2`` program (its graph is fixed in
    eval mode, BatchNorm frozen: training it diverges) or a module whose ``train()`` refuses."""
    if loaded.kind == "pt2":
        raise SpecError(f"{loaded.spec} is a saved torch.export program: its graph is fixed in eval mode "
                        f"(BatchNorm uses its running statistics, dropout is off), so prune cannot train it",
                        hint=_retrain_hint(loaded))
    try:
        loaded.model.train()
    except Exception as e:  # noqa: BLE001 - e.g. an exported GraphModule: "Calling train() is not supported"
        raise SpecError(f"{loaded.spec} cannot be put in training mode ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}), so prune cannot train it",
                        hint="prune the model as built by its Python code, not an exported copy") from e
    finally:
        to_eval(loaded.model)


def _retrain_hint(loaded: LoadedModel) -> str:
    path = Path(loaded.spec)
    folder = path if path.is_dir() else path.parent
    code = folder / "model.py"
    shape = ",".join(str(s) for s in loaded.input_shape or ()) or "N,C,H,W"
    original = _original_spec(folder)
    again = f"prune the original model ({original!r}) again" if original else "prune the original model spec"
    if code.is_file() and code.read_text(errors="replace").startswith(_STANDALONE):
        return (f"prune the compact model's own code instead, from its folder: cd {folder} && otograph prune "
                f"model:load --input-shape {shape} --out OTHER_DIR; or {again}")
    return f"{again} (or a module.path:factory that builds it)"


def _original_spec(folder: Path) -> str | None:
    """The model spec of the run that wrote ``folder``, if it is a readable run folder."""
    from otograph.cli.record import RunRecord

    try:
        return RunRecord.load(folder).options.model
    except (OtographError, ValueError, KeyError, TypeError):
        return None


def traced_space(loaded: LoadedModel, leaf_names, frontend: str | None,
                 say: Callable[[str], None] = log.info) -> otograph.SearchSpace:
    """``otograph.search_space`` of a loaded model (``--leaf`` names resolved on it), saying in one line
    when ``--frontend auto`` fell back to torch.export. When tracing fails because the model itself
    rejects its example input (a wrong ``--input-shape``), that is the error reported."""
    leaves = resolve_leaves(loaded.model, leaf_names)
    try:
        with _stderr_to_log():
            space = otograph.search_space(loaded.model, loaded.example_inputs, leaf_modules=leaves,
                                          frontend=frontend_for(loaded, frontend))
    except Exception as e:
        rejected = model_error(loaded.model, loaded.example_inputs)
        if rejected is None:
            raise
        raise _input_error(loaded, rejected) from e
    if frontend == "auto" and space.traced.frontend != "fx":
        say(f"--frontend auto: torch.fx could not trace {loaded.spec}, so torch.export did (-v says why)")
    return space


@contextlib.contextmanager
def _stderr_to_log() -> Iterator[None]:
    """What torch prints to stderr meanwhile (a failed export prints its partial graph) goes to the log
    (shown with -v) instead of burying the one-line error."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            yield
    finally:
        if buf.getvalue().strip():
            log.info("torch printed while tracing:\n%s", buf.getvalue().rstrip())


@torch.no_grad()
def model_error(model: nn.Module, inputs: Any) -> Exception | None:
    """The error ``model`` raises on ``inputs`` (run for real, in eval mode), or None if it runs."""
    from otograph.tracing.values import normalize_inputs

    args, kwargs = normalize_inputs(inputs)
    try:
        model(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the error is the answer
        return e
    return None


def _input_error(loaded: LoadedModel, e: Exception) -> SpecError:
    shape = f"input of shape {','.join(map(str, loaded.input_shape))}" if loaded.input_shape else "example inputs"
    first = next((m for m in loaded.model.modules() if hasattr(m, "in_channels") or hasattr(m, "in_features")), None)
    takes = ""
    if first is not None:
        n = getattr(first, "in_channels", None) or getattr(first, "in_features", None)
        takes = f" (its first layer, a {type(first).__name__}, takes {n} {'channels' if hasattr(first, 'in_channels') else 'features'})"
    return SpecError(f"{loaded.spec} does not run on its {shape}: {type(e).__name__}: {_first_line(e)}",
                     hint=f"give --input-shape with the shape the model takes{takes}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else "(no message)"


def batch_pair(batch: Any, spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` of one batch, or a :class:`DataError` saying what the batch is instead."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(t, torch.Tensor) for t in batch):
        return batch[0], batch[1]
    if isinstance(batch, dict):
        raise DataError(f"--data {spec} yields dict batches (keys {', '.join(map(str, batch))}): keyword inputs, "
                        f"as transformers models take, are not supported by prune, which trains with cross-entropy "
                        f"on (inputs, targets) batches",
                        hint="prune such a model with the library: otograph.search_space, then HESSO in your own "
                             "training loop (see the README)")
    what = type(batch).__name__ + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    raise DataError(f"--data {spec} yields {what} batches; prune trains on (inputs, targets) pairs of tensors")


def check_data(loaded: LoadedModel, data: LoadedData, explicit_shape: bool,
               say: Callable[[str], None] = log.info) -> None:
    """Before any work: both loaders have batches of ``(inputs, targets)``, the model runs on the
    samples and has an output per class. The example input (tracing, FLOPs) takes the samples' shape
    unless ``--input-shape`` gave another, which is refused."""
    if not isinstance(loaded.example_inputs, torch.Tensor):
        raise SpecError(f"{loaded.spec} takes {type(loaded.example_inputs).__name__} example inputs; prune trains "
                        f"models that take one tensor", hint="prune such a model with the library (see the README)")
    for name, loader in (("training", data.train), ("validation", data.val)):
        try:
            n = len(loader)
        except TypeError:
            raise DataError(f"the {name} loader of --data {data.spec} has no len(): prune plans HESSO's pruning "
                            f"periods from the number of batches", hint="return a torch DataLoader") from None
        if n == 0:
            raise DataError(f"the {name} data of --data {data.spec} is empty (0 batches)")
    batch = next(iter(data.val), None)  # the validation loader: reading it draws nothing from the shuffling seed
    if batch is None:
        raise DataError(f"the validation loader of --data {data.spec} yields no batch although its len() is "
                        f"{len(data.val)}")
    x, y = batch_pair(batch, data.spec)
    out = model_error(loaded.model, x[:2])
    if out is not None:
        raise DataError(f"{loaded.spec} does not run on the samples of --data {data.spec} (shape "
                        f"{_dims(x.shape[1:])}): {type(out).__name__}: {_first_line(out)}",
                        hint=f"prune a model made for {_dims(x.shape[1:])} samples, or data the model takes")
    _check_classes(loaded, x, y, data.spec)
    _fit_example(loaded, x, explicit_shape, data.spec, say)


def _fit_example(loaded: LoadedModel, x: torch.Tensor, explicit_shape: bool, spec: str, say) -> None:
    ex = loaded.example_inputs
    if tuple(ex.shape[1:]) == tuple(x.shape[1:]):
        return
    sample = _dims(x.shape[1:])
    if explicit_shape:
        raise SpecError(f"--input-shape {','.join(map(str, ex.shape))} does not match the samples of --data {spec} "
                        f"({sample})", hint=f"give --input-shape {ex.shape[0]},{','.join(map(str, x.shape[1:]))}, "
                                            f"or leave it out")
    loaded.example_inputs = torch.randn(ex.shape[0], *x.shape[1:])
    say(f"example input: {_dims(ex.shape[1:])} from the model spec, {sample} from --data {spec}; using {sample}")


@torch.no_grad()
def _check_classes(loaded: LoadedModel, x: torch.Tensor, y: torch.Tensor, spec: str) -> None:
    out = loaded.model(x[:2])
    lm = isinstance(out, torch.Tensor) and out.ndim == 3 and y.ndim == 2  # (batch, seq, vocab), next tokens
    if not isinstance(out, torch.Tensor) or (out.ndim != 2 and not lm):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SpecError(f"{loaded.spec} outputs {shape}; prune trains classifiers with cross-entropy, which "
                        f"needs (batch, classes) logits (or a language model's (batch, seq, vocab) with "
                        f"(batch, seq) next tokens)")
    if y.dtype.is_floating_point or y.numel() == 0:
        return
    top = int(y.max())
    if top >= out.shape[-1] or int(y.min()) < 0:
        fix = ("drop num_classes from the spec" if "num_classes" in loaded.options
               else f"give the model {top + 1} outputs, e.g. ?num_classes={top + 1}")
        raise DataError(f"--data {spec} has class labels up to {top} but {loaded.spec} outputs {out.shape[-1]} "
                        f"classes", hint=fix)


def _dims(shape) -> str:
    return "×".join(str(int(s)) for s in shape)
