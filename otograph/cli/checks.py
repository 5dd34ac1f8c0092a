"""Checks the prune job makes before any work, so that a run that cannot succeed fails at once with
one line that says why and what to do, instead of a traceback or a silently wrong model."""

from __future__ import annotations

from pathlib import Path

from otograph.cli.specs import LoadedModel, SpecError, to_eval
from otograph.errors import OtographError

__all__ = ["check_trainable"]

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
