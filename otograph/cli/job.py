"""The prune job behind ``otograph prune``: load, trace, train densely and with HESSO, compress and
verify, measure, save the files, write the record. One function per step; :func:`prune` runs them.

Everything is written into a hidden folder and renamed to ``out`` at the end (see
:func:`otograph.fileio.staged_dir`), so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import otograph
from hesso import HESSO, Teacher
from otograph.analysis import SearchSpace
from otograph.cli.checks import batch_pair, check_data, check_trainable, traced_space
from otograph.cli.options import OptionError, PruneOptions
from otograph.cli.record import (
    RUN_JSON,
    DataInfo,
    Exactness,
    Files,
    GroupOutcome,
    Histories,
    ModelInfo,
    RunRecord,
    Schedule,
    SpaceInfo,
    TrainingInfo,
)
from otograph.cli.report_md import render_report
from otograph.cli.specs import (
    LoadedData,
    LoadedModel,
    load_data,
    load_model,
    peek_num_classes,
)
from otograph.cli.training import History, TrainingError, base_optimizer, evaluate, train
from otograph.cli.weights import load_weights
from otograph.errors import RewriteError
from otograph.fileio import atomic_write, refuse_existing, staged_dir, write_text
from otograph.report.measure import measure
from otograph.report.plots import Panel, Series, save_chart
from otograph.report.tables import space_table
from otograph.rewrite.save import export_program, save_compact
from otograph.tracing.values import normalize_inputs

__all__ = ["prune", "Trained", "Compressed", "RUN_FILES"]

log = logging.getLogger(__name__)

Say = Callable[[str], None]

#: What a run folder may hold: ``--force`` replaces a folder with ``run.json`` and nothing else.
RUN_FILES = frozenset({"report.md", "model.pt2", "model.py", "state_dict.pt", "reference.pt2", "search_space.svg",
                       "search_space.dot", "training.png", "run.json", "removed_units.json", "__pycache__"})


@dataclass
class Trained:
    """One training run: its history, wall time, final validation accuracy (and HESSO's metrics)."""

    history: History
    seconds: float
    accuracy: float
    metrics: dict[str, Any] | None = None


@dataclass
class Compressed:
    """The compact model, the units removed per group, its accuracy and its exactness."""

    model: nn.Module
    removed: dict[str, list[int]]
    accuracy: float
    exactness: Exactness


def prune(o: PruneOptions, say: Say = log.info) -> RunRecord:
    """Run the job; returns its record (also written as ``run.json``). Fails before any work on bad input."""
    t_start = time.perf_counter()
    refuse_existing(o.out, o.force, marker=RUN_JSON, owned=RUN_FILES)
    loaded, data = load(o, say)
    say(f"tracing {o.model} ({type(loaded.model).__name__}) with input {loaded.input_shape}")
    space = search_space(o, loaded, say)
    say(f"search space: {space!r}")
    schedule = pruning_schedule(o, len(data.train))
    model, one = loaded.model, _one(loaded.example_inputs)
    init_state = copy.deepcopy(model.state_dict())
    start = start_accuracy(o, model, data, say)
    teacher = make_teacher(o, model, say)
    with staged_dir(o.out, o.force, marker=RUN_JSON, owned=RUN_FILES) as stage:
        dense = train_dense(o, model, data, teacher) if o.baseline and start is None else None
        model.load_state_dict(init_state)
        pruned = train_hesso(o, model, space, data, schedule, say, teacher)
        comp = compress_and_verify(model, space, data, say)
        first = start if start is not None else dense.accuracy if dense else pruned.accuracy
        before = measure(model, one, accuracy=first)
        after = measure(comp.model, one, accuracy=comp.accuracy)
        title = f"{o.model} ({type(model).__name__})"
        files = save_files(stage, o, model, loaded.example_inputs, comp, space, title, say)
        files.training_chart = save_training_chart(stage, o, title, pruned, dense, schedule, start)
        record = RunRecord(
            otograph_version=otograph.__version__, options=o,
            model=ModelInfo(o.model, type(model).__name__, list(loaded.input_shape or [])),
            data=DataInfo(o.data, data.num_classes, _size(data.train), _size(data.val)),
            training=training_info(o, len(data.train), schedule, dense, pruned, start), before=before, after=after,
            trained_accuracy=pruned.accuracy, exactness=comp.exactness, space=space_info(space, comp.removed),
            groups=group_outcomes(space, comp.removed), threads=torch.get_num_threads(),
            history=Histories(pruned.history, dense.history if dense else None), files=files,
            wall_seconds=time.perf_counter() - t_start)
        write_record(stage, record)
    return record


def load(o: PruneOptions, say: Say = log.info) -> tuple[LoadedModel, LoadedData]:
    """Set threads and seed, build the model (with the data's class count) and the data loaders, and
    check they fit each other (:func:`~otograph.cli.checks.check_data`)."""
    threads = o.threads or (1 if o.model in ("default", "") else None)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(o.seed)
    nc = peek_num_classes(o.data)
    loaded = load_model(o.model, o.input_shape, {"num_classes": nc} if nc else None)
    check_trainable(loaded)
    if o.weights:
        load_weights(loaded.model, o.weights)
        say(f"loaded the weights of {o.weights}")
    data = load_data(o.data, batch_size=o.batch_size, seed=o.seed, input_shape=loaded.input_shape)
    check_data(loaded, data, o.input_shape is not None, say)
    return loaded, data


def search_space(o: PruneOptions, loaded: LoadedModel, say: Say = log.info) -> SearchSpace:
    """Trace the model (``--leaf`` resolved against it) and check the budget can be met."""
    space = traced_space(loaded, o.leaf_modules, o.frontend, say)
    if not space.prunable_groups:
        raise otograph.OtographError(f"{o.model}: no prunable group was found, nothing to prune:\n{space_table(space)}")
    if o.target.kind == "flops" and not any(float(g.unit_flops.sum()) > 0 for g in space.prunable_groups):
        raise otograph.OtographError(f"{o.model}: no FLOPs could be attributed to the prunable groups, so a "
                                     f"FLOPs budget cannot be met; use --target-params or --sparsity")
    return space


def pruning_schedule(o: PruneOptions, steps_per_epoch: int) -> Schedule:
    """The pruning periods: they start after ``pruning_start`` of all steps and cover ``pruning_span``
    (at least one step per period), moved earlier where needed so that they end by the last step.

    >>> pruning_schedule(PruneOptions(epochs=10), 23)
    Schedule(start_step=23, steps=92, periods=4)
    >>> pruning_schedule(PruneOptions(epochs=3, periods=12), 4)
    Schedule(start_step=0, steps=12, periods=12)
    """
    total = o.epochs * steps_per_epoch
    if total < o.periods:
        raise OptionError(f"{o.epochs} epoch(s) of {steps_per_epoch} batch(es) are {total} training step(s), fewer "
                          f"than the {o.periods} pruning periods (--periods), so the budget could not be reached",
                          hint=f"train for more steps (more --epochs, a smaller --batch-size) or give --periods {total}")
    steps = min(total, max(o.periods, int(round(o.pruning_span * total))))
    return Schedule(start_step=min(int(round(o.pruning_start * total)), total - steps), steps=steps, periods=o.periods)


def start_accuracy(o: PruneOptions, model: nn.Module, data: LoadedData, say: Say = log.info) -> float | None:
    """With ``--weights``, the starting model's validation accuracy (the "before" of the report); else None."""
    if not o.weights:
        return None
    accuracy = evaluate(model, data.val)
    say(f"the starting model ({o.weights}): {accuracy:.2f}% validation accuracy")
    return accuracy


def make_teacher(o: PruneOptions, model: nn.Module, say: Say = log.info) -> Teacher | None:
    """With ``--distill T``, a frozen copy of the starting model (eval mode, no gradients, in no optimizer)."""
    if o.distill is None:
        return None
    if not o.weights:
        say("--distill without --weights: the teacher is the model as built (untrained unless its factory "
            "loads weights)")
    return Teacher(model, temperature=o.distill)


def train_dense(o: PruneOptions, model: nn.Module, data: LoadedData, teacher: Teacher | None = None) -> Trained:
    """Train a copy of ``model`` densely with the same recipe: the "before" accuracy."""
    dense = copy.deepcopy(model)
    torch.manual_seed(o.seed)
    t0 = time.perf_counter()
    hist = train(dense, base_optimizer(dense, o.optimizer, o.hyper()), data, o.epochs + o.finetune_epochs,
                 desc="dense baseline", progress=o.progress, teacher=teacher)
    seconds = time.perf_counter() - t0
    return Trained(hist, seconds, hist.val_accuracy[-1] if hist.val_accuracy else evaluate(dense, data.val))


def train_hesso(o: PruneOptions, model: nn.Module, space: SearchSpace, data: LoadedData, schedule: Schedule,
                say: Say, teacher: Teacher | None = None) -> Trained:
    """Train ``model`` in place with HESSO, which drives the redundant units to exactly zero; the
    ``--finetune-epochs`` follow the ``--epochs`` that hold the pruning periods."""
    torch.manual_seed(o.seed)
    opt = HESSO(model, space, variant=o.optimizer, **o.hyper(), target=o.target,
                start_pruning_step=schedule.start_step, pruning_steps=schedule.steps,
                pruning_periods=schedule.periods, group_divisible=o.round_to, cric=o.cric or None)
    t0 = time.perf_counter()
    hist = train(model, opt, data, o.epochs + o.finetune_epochs, desc="HESSO", progress=o.progress,
                 metrics=opt.metrics, teacher=teacher)
    seconds = time.perf_counter() - t0
    model.eval()
    accuracy = evaluate(model, data.val)
    say(opt.summary())
    if opt.metrics()["stage"] != "done":  # the schedule fits the steps; a shorter loader would end early
        raise TrainingError(f"training ended at step {len(hist.step)} before HESSO's pruning periods did "
                            f"(stage {opt.metrics()['stage']!r}, periods {schedule.ranges()}), so the budget was not "
                            f"reached", hint="check that the training loader yields len(loader) batches every epoch")
    return Trained(hist, seconds, accuracy, opt.metrics())


def compress_and_verify(model: nn.Module, space: SearchSpace, data: LoadedData, say: Say) -> Compressed:
    """Build the compact model from the exact zeros, evaluate it and compare it with ``model``."""
    removed = space.zero_units(model)
    compact = otograph.compress(model, space)
    compact.eval()
    accuracy = evaluate(compact, data.val)
    ex = exactness(model, compact, data)
    say(f"compact model: max |Δ| {ex.max_abs:.3g} (float32), {ex.max_abs_f64:.3g} (float64)")
    return Compressed(compact, removed, accuracy, ex)


#: The exactness bound, as in :attr:`otograph.rewrite.verify.Verification.exact` (float64).
BOUND_TEXT = "1e-9·max(1, max|y|)"


@torch.no_grad()
def exactness(full: nn.Module, compact: nn.Module, data: LoadedData, limit: int = 512) -> Exactness:
    """max |Δ| in float32 and float64 and the share of equal predictions on up to ``limit`` inputs.

    A gate, not a measurement only: a trained model whose outputs are not finite raises
    :class:`TrainingError`, and a compact model beyond float rounding of it (the float64 bound of
    :attr:`~otograph.rewrite.verify.Verification.exact`) raises :class:`~otograph.errors.RewriteError`.
    """
    x = _inputs(data.val, limit)
    full.eval()
    compact.eval()
    y = full(x)
    if not bool(torch.isfinite(y).all()):
        raise TrainingError(f"the trained model outputs NaN or inf on {len(x)} validation inputs, so it cannot "
                            f"be compressed or checked", hint="train more gently: a smaller --lr")
    v32 = otograph.verify(full, compact, x)
    v64 = otograph.verify(full, compact, x, dtype=torch.float64)
    same = float((y.argmax(1) == compact(x).argmax(1)).float().mean())
    if not v64.exact:
        raise RewriteError(
            f"the compact model does not compute what the trained model computes: max |Δ| {v64.max_abs:.3g} in "
            f"float64 on {len(x)} validation inputs (bound {BOUND_TEXT} = {1e-9 * max(1.0, v64.max_ref):.3g}), "
            f"predictions agree on {same:.2%}; the run was not saved",
            hint="this is a bug in otograph: please report it with the model spec and `otograph trace MODEL --json`")
    return Exactness(len(x), v32.max_abs, v32.max_rel, v64.max_abs, v64.max_rel, same)


def _inputs(loader, limit: int) -> torch.Tensor:
    xs: list[torch.Tensor] = []
    for batch in loader:
        xs.append(batch_pair(batch, "the validation data")[0])
        if sum(len(t) for t in xs) >= limit:
            break
    return torch.cat(xs)[:limit]


def save_files(stage: Path, o: PruneOptions, model: nn.Module, example: Any, comp: Compressed,
               space: SearchSpace, title: str, say: Say) -> Files:
    """The compact model (.pt2, .py, state dict), the reference, the removed units and the picture."""
    from otograph.drawing import render

    files = Files(**save_compact(comp.model, example, stage))
    if o.save_reference:
        files.reference = _save_reference(stage / "reference.pt2", model, example)
    write_text(stage / "removed_units.json", json.dumps(comp.removed, indent=1))
    pic = render(space, stage / "search_space.svg", removed=comp.removed, title=f"{title}, after pruning")
    files.search_space = pic.path.name
    if pic.message:
        say(pic.message)
    return files


def _save_reference(path: Path, model: nn.Module, example: Any) -> str | None:
    try:
        ep = export_program(model, normalize_inputs(example)[0])
        with atomic_write(path) as f:
            torch.export.save(ep, f)
    except Exception as e:  # noqa: BLE001 - the reference is a convenience
        log.warning("could not export the trained full model: %s", e)
        return None
    return path.name


def save_training_chart(stage: Path, o: PruneOptions, title: str, pruned: Trained, dense: Trained | None,
                        schedule: Schedule, start: float | None = None) -> str:
    """``training.png``: loss, validation accuracy and what HESSO removed, per step.

    The FLOPs and parameter curves are the compact model's true reductions for the units removed so
    far (HESSO's cost model, as ``torch.utils.flop_counter`` counts the compact model), drawn with the
    asked target as a dashed line.
    """
    shade, h = schedule.ranges(), pruned.history
    loss = [Series("HESSO", h.step, h.loss, "#1f77b4")]
    acc = [Series("HESSO", h.eval_step, h.val_accuracy, "#1f77b4")]
    if dense is not None:
        d = dense.history
        loss.append(Series("dense", d.step, d.loss, "#ff7f0e", dashed=True))
        acc.append(Series("dense", d.eval_step, d.val_accuracy, "#ff7f0e", dashed=True))
    if start is not None and h.step:
        acc.append(Series("starting model", [0, h.step[-1]], [start, start], "#7f7f7f", dashed=True))
    curves = {"units": ("units removed", h.group_sparsity, "#2ca02c"),
              "flops": ("FLOPs removed", h.flops_reduction, "#d62728"),
              "params": ("parameters removed", h.param_reduction, "#9467bd")}
    removed = [Series(label, h.step, ys, color) for kind, (label, ys, color) in curves.items()
               if ys and (kind != "params" or o.target.kind == "params")]
    label, _, color = curves[o.target.kind]
    if h.step:
        removed.append(Series(f"{label.split()[0]} asked ({o.target.fraction:.0%})", [0, h.step[-1]],
                              [o.target.fraction] * 2, color, dashed=True))
    what = "cross-entropy + distillation" if o.distill is not None else "cross-entropy"
    panels = [Panel(f"training loss ({what})", loss, shade),
              Panel("validation accuracy (%)", acc, shade, yfmt="{:.0f}"),
              Panel("removed by HESSO (measured on the compact model)", removed, shade, ylim=(0.0, 1.0),
                    yfmt="{:.0%}")]
    got = curves[o.target.kind][1]
    subtitle = (f"{title} on {o.data}: HESSO, {o.target.fraction:.0%} {o.target.kind} reduction asked"
                + (f", {got[-1]:.1%} measured" if got else ""))
    return save_chart(panels, subtitle, stage / "training.png").name


def training_info(o: PruneOptions, steps_per_epoch: int, schedule: Schedule, dense: Trained | None,
                  pruned: Trained, start: float | None = None) -> TrainingInfo:
    hyper = o.hyper()
    baseline = "start" if start is not None else "dense" if dense else "trained"
    return TrainingInfo(epochs=o.epochs, steps=(o.epochs + o.finetune_epochs) * steps_per_epoch,
                        optimizer=o.optimizer, lr=hyper["lr"], weight_decay=hyper["weight_decay"],
                        momentum=hyper.get("momentum"), target=o.target, cric=o.cric, pruning=schedule,
                        seconds=pruned.seconds, baseline=baseline, baseline_seconds=dense.seconds if dense else 0.0,
                        hesso=pruned.metrics or {}, finetune_epochs=o.finetune_epochs, round_to=o.round_to,
                        distill=o.distill, weights=o.weights)


def space_info(space: SearchSpace, removed: dict[str, list[int]]) -> SpaceInfo:
    return SpaceInfo(groups=len(space.groups), prunable=len(space.prunable_groups),
                     units=sum(g.num_units for g in space.groups),
                     units_removed=sum(len(v) for v in removed.values()), opaque=list(space.opaque),
                     frontend=space.traced.frontend)


def group_outcomes(space: SearchSpace, removed: dict[str, list[int]]) -> list[GroupOutcome]:
    return [GroupOutcome(g.id, g.num_units, g.num_units - len(removed.get(g.id, ())), g.prunable, g.reason)
            for g in space.groups]


def write_record(stage: Path, record: RunRecord) -> None:
    """``run.json`` and ``report.md``."""
    record.save(stage)
    write_text(stage / "report.md", render_report(record))


def _one(example: Any) -> Any:
    return example[:1] if isinstance(example, torch.Tensor) else example


def _size(loader) -> int | None:
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):
        return None
