"""The record of one ``otograph prune`` run: typed dataclasses, written to and read from ``run.json``.

JSON keys are the field names, except where a field's metadata names another (``class``).

Example:
    >>> g = GroupOutcome("conv1", units=8, kept=5, prunable=True, reason=None)
    >>> to_plain(g)
    {'id': 'conv1', 'units': 8, 'kept': 5, 'prunable': True, 'reason': None}
    >>> from_plain(GroupOutcome, to_plain(g)) == g
    True
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hesso import Target
from otograph.cli.options import PruneOptions
from otograph.cli.specs import SpecError
from otograph.cli.training import History
from otograph.report.measure import Measurement

__all__ = ["RUN_JSON", "RunRecord", "ModelInfo", "DataInfo", "Schedule", "TrainingInfo", "Exactness", "SpaceInfo",
           "GroupOutcome", "Histories", "Files", "to_plain", "from_plain"]

RUN_JSON = "run.json"


@dataclass
class ModelInfo:
    spec: str
    class_name: str = field(metadata={"key": "class"})
    input_shape: list[int] = field(default_factory=list)


@dataclass
class DataInfo:
    spec: str
    num_classes: int | None = None
    train_size: int | None = None
    val_size: int | None = None


@dataclass
class Schedule:
    """HESSO's pruning periods: ``periods`` of ``steps // periods`` steps from ``start_step``."""

    start_step: int
    steps: int
    periods: int

    def ranges(self) -> list[tuple[int, int]]:
        """``(first, end)`` step of each period."""
        d = self.steps // self.periods
        return [(self.start_step + p * d, self.start_step + (p + 1) * d) for p in range(self.periods)]


@dataclass
class TrainingInfo:
    epochs: int
    steps: int
    optimizer: str
    lr: float
    weight_decay: float
    target: Target
    cric: bool
    pruning: Schedule
    seconds: float
    baseline: str  # "dense": trained densely with the same recipe; "trained": the HESSO model itself;
    #                "start": the model loaded from --weights, before any training
    baseline_seconds: float
    hesso: dict[str, Any]  # HESSO.metrics() at the end
    momentum: float | None = None
    finetune_epochs: int = 0  # after the ``epochs`` that hold the pruning periods; ``steps`` counts both
    round_to: int = 1
    distill: float | None = None  # the distillation temperature, None when off
    weights: str | None = None  # the state_dict file the run started from


@dataclass
class Exactness:
    """The compact model against the trained full model on validation inputs."""

    samples: int
    max_abs: float
    max_rel: float
    max_abs_f64: float
    max_rel_f64: float
    same_argmax: float


@dataclass
class SpaceInfo:
    groups: int
    prunable: int
    units: int
    units_removed: int
    opaque: list[str] = field(default_factory=list)
    frontend: str | None = None  # the frontend that traced the model ("fx" or "export", also after "auto")


@dataclass
class GroupOutcome:
    id: str
    units: int
    kept: int
    prunable: bool
    reason: str | None = None


@dataclass
class Histories:
    hesso: History
    dense: History | None = None


@dataclass
class Files:
    """What was written besides the record (names relative to the run folder) and how it went."""

    pt2: bool = False
    standalone_py: bool = False
    dynamic_batch: bool = False
    pt2_error: str | None = None
    reference: str | None = None
    search_space: str | None = None
    training_chart: str | None = None


@dataclass
class RunRecord:
    """Everything one prune run measured; ``run.json`` holds it as plain JSON."""

    otograph_version: str
    options: PruneOptions
    model: ModelInfo
    data: DataInfo
    training: TrainingInfo
    before: Measurement
    after: Measurement
    trained_accuracy: float
    exactness: Exactness
    space: SpaceInfo
    groups: list[GroupOutcome]
    threads: int
    history: Histories
    files: Files
    wall_seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(to_plain(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        data = json.loads(text)
        _upgrade(data)
        return from_plain(cls, data)

    def save(self, folder: str | Path) -> Path:
        from otograph.fileio import write_text

        return write_text(Path(folder) / RUN_JSON, self.to_json())

    @classmethod
    def load(cls, folder: str | Path) -> RunRecord:
        """The record of a folder written by ``otograph prune``."""
        path = Path(folder) / RUN_JSON
        if not path.is_file():
            raise SpecError(f"{str(folder)!r} is not a folder written by `otograph prune` (no {RUN_JSON})")
        try:
            return cls.from_json(path.read_text())
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # not JSON, or not a record of a run
            why = f"{type(e).__name__}: {e}"
            raise SpecError(f"{path} is not the record of a prune run ({why[:120]})") from None


def _key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def to_plain(x: Any) -> Any:
    """Dataclasses, tuples and dicts as JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {_key(f): to_plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, (list, tuple)):
        return [to_plain(v) for v in x]
    if isinstance(x, dict):
        return {str(k): to_plain(v) for k, v in x.items()}
    return x


def from_plain(tp: Any, data: Any) -> Any:
    """``data`` (parsed JSON) as a value of the type ``tp``: the inverse of :func:`to_plain`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if data is None:
        return None
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return from_plain(inner[0], data) if len(inner) == 1 else data
    if origin is list:
        return [from_plain(args[0], v) for v in data]
    if origin is tuple:
        return tuple(from_plain(args[0], v) for v in data) if args else tuple(data)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: from_plain(hints[f.name], data[_key(f)])
                     for f in dataclasses.fields(tp) if _key(f) in data})
    return data


def _upgrade(data: dict) -> None:
    """Read records written before the budget was a ``hesso.Target``."""
    target = data.get("training", {}).get("target") or {}
    if "value" in target:
        target["fraction"] = target.pop("value")
        target["kind"] = {"groups": "units"}.get(target["kind"], target["kind"])
    options = data.get("options", {})
    if "target" not in options and "training" in data:
        options["target"] = dict(target)
