"""The whole prune job behind ``otograph prune``: train with HESSO, compress, verify, measure, save.

Everything is written into a hidden folder and renamed to ``out`` at the end (see
:func:`otograph.fileio.staged_dir`), so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import otograph
from otograph.fileio import atomic_write, staged_dir, write_text
from otograph.graph.cost import count_flops, count_params
from otograph.report.latency import latency_ms
from otograph.report.markdown import render_report
from otograph.report.tables import space_table
from otograph.rewrite.save import export_program, save_compact
from otograph.cli.specs import LoadedData, LoadedModel, load_data, load_model, peek_num_classes
from otograph.tracing.values import normalize_inputs

__all__ = ["PruneOptions", "prune", "train", "evaluate"]

log = logging.getLogger(__name__)

_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
_WD = {"sgd": 5e-4, "adam": 0.0, "adamw": 1e-2}


@dataclass
class PruneOptions:
    """Options of one prune run (the CLI's flags). The defaults are the built-in run's recipe."""

    model: str = "default"
    data: str = "digits"
    out: str = "runs/default"
    force: bool = False
    input_shape: tuple[int, ...] | None = None
    target_flops: float | None = None
    target_params: float | None = None
    sparsity: float | None = None
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    pruning_start: float = 0.1   # fraction of all steps before the first period
    pruning_span: float = 0.4    # fraction of all steps the periods cover
    periods: int = 4
    cric: bool = False
    baseline: bool = True        # also train the dense model with the same recipe, for "before"
    seed: int = 0
    leaf_modules: tuple[str, ...] = ()
    frontend: str | None = None  # "fx" | "export" | "auto"; None: export for .pt2 files, else fx
    threads: int | None = None   # torch threads; None: 1 for the built-in model, else torch's default
    progress: bool = True
    save_reference: bool = True

    def target(self) -> tuple[str, float]:
        given = [(k, v) for k, v in (("flops", self.target_flops), ("params", self.target_params),
                                     ("groups", self.sparsity)) if v is not None]
        if len(given) > 1:
            raise ValueError("give at most one of --target-flops, --target-params, --sparsity")
        kind, value = given[0] if given else ("flops", 0.65)
        if not 0 < value < 1:
            raise ValueError(f"the pruning target must be a fraction between 0 and 1, got {value}")
        return kind, value


@dataclass
class History:
    """What the charts need: per-step loss and pruning progress, per-epoch validation accuracy."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    group_sparsity: list[float] = field(default_factory=list)
    flops_reduction: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


def evaluate(model: nn.Module, loader) -> float:
    """Top-1 accuracy in percent."""
    was = model.training
    model.eval()
    right = total = 0
    with torch.no_grad():
        for x, y in loader:
            right += int((model(x).argmax(1) == y).sum())
            total += len(y)
    model.train(was)
    return 100.0 * right / max(1, total)


def train(model: nn.Module, opt: torch.optim.Optimizer, data: LoadedData, epochs: int, *,
          desc: str, progress: bool, metrics: Callable[[], dict] | None = None) -> History:
    """Plain cross-entropy training with a cosine learning rate; records a :class:`History`."""
    from tqdm.auto import tqdm

    total = epochs * len(data.train)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, total))
    hist = History()
    k = 0
    bar = tqdm(total=total, desc=desc, unit="step", disable=not progress, dynamic_ncols=True, mininterval=0.5,
               leave=True)
    try:
        for _ in range(epochs):
            model.train()
            for x, y in data.train:
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                sched.step()
                k += 1
                hist.step.append(k)
                value = loss.item()
                hist.loss.append(value)
                post = {"loss": f"{value:.3f}"}
                if metrics is not None:
                    m = metrics()
                    hist.group_sparsity.append(m["group_sparsity"])
                    hist.flops_reduction.append(m["flops_reduction"])
                    post.update(stage=m["stage"], pruned=f"{m['group_sparsity']:.0%}")
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            hist.eval_step.append(k)
            hist.val_accuracy.append(evaluate(model, data.val))
            bar.set_postfix({**post, "val_acc": f"{hist.val_accuracy[-1]:.1f}%"}, refresh=False)
    finally:
        bar.close()
    return hist


def _hyper(o: PruneOptions) -> dict[str, Any]:
    lr = o.lr if o.lr is not None else _LR[o.optimizer]
    wd = o.weight_decay if o.weight_decay is not None else _WD[o.optimizer]
    return {"lr": lr, "weight_decay": wd, **({"momentum": o.momentum} if o.optimizer == "sgd" else {})}


def _base_optimizer(model: nn.Module, o: PruneOptions) -> torch.optim.Optimizer:
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[o.optimizer]
    return cls(model.parameters(), **_hyper(o))


def _one(example: Any) -> Any:
    return example[:1] if isinstance(example, torch.Tensor) else example


@torch.no_grad()
def _exactness(full: nn.Module, compact: nn.Module, data: LoadedData, limit: int = 512) -> dict[str, float]:
    xs = []
    for x, _ in data.val:
        xs.append(x)
        if sum(len(t) for t in xs) >= limit:
            break
    x = torch.cat(xs)[:limit]
    v32 = otograph.verify(full, compact, x)
    full.eval()
    compact.eval()
    same = float((full(x).argmax(1) == compact(x).argmax(1)).float().mean())
    f64, c64 = copy.deepcopy(full).double(), copy.deepcopy(compact).double()
    v64 = otograph.verify(f64, c64, x.double())
    return {"samples": len(x), "max_abs": v32.max_abs, "max_rel": v32.max_rel, "max_abs_f64": v64.max_abs,
            "max_rel_f64": v64.max_rel, "same_argmax": same}


def _chart(out: Path, o: PruneOptions, hist: History, dense: History | None, sched: tuple[int, int, int],
           title: str) -> str:
    from otograph.report.plots import Panel, Series, save_chart

    start, duration, periods = sched
    shade = [(start + p * duration, start + (p + 1) * duration) for p in range(periods)]
    loss = [Series("HESSO", hist.step, hist.loss, "#1f77b4")]
    acc = [Series("HESSO", hist.eval_step, hist.val_accuracy, "#1f77b4")]
    if dense is not None:
        loss.append(Series("dense", dense.step, dense.loss, "#ff7f0e", True))
        acc.append(Series("dense", dense.eval_step, dense.val_accuracy, "#ff7f0e", True))
    panels = [Panel("training loss (cross-entropy)", loss, shade),
              Panel("validation accuracy (%)", acc, shade, yfmt="{:.0f}"),
              Panel("removed by HESSO", [Series("group sparsity", hist.step, hist.group_sparsity, "#2ca02c"),
                                         Series("FLOPs (budget)", hist.step, hist.flops_reduction, "#d62728")],
                    shade, ylim=(0.0, 1.0), yfmt="{:.0%}")]
    return save_chart(panels, title, out / "training.png").name


def prune(o: PruneOptions, say: Callable[[str], None] = log.info) -> dict:
    """Run the job; returns the ``run.json`` data. Raises before writing anything on bad input."""
    t_start = time.perf_counter()
    kind, value = o.target()
    from hesso import HESSO

    threads = o.threads or (1 if o.model in ("default", "") else None)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(o.seed)
    nc = peek_num_classes(o.data)
    loaded: LoadedModel = load_model(o.model, o.input_shape, {"num_classes": nc} if nc else None)
    data = load_data(o.data, batch_size=o.batch_size, seed=o.seed, input_shape=loaded.input_shape)
    model, example = loaded.model, loaded.example_inputs
    say(f"tracing {o.model} ({type(model).__name__}) with input {loaded.input_shape}")
    frontend = o.frontend or ("export" if loaded.kind == "pt2" else "fx")
    space = otograph.search_space(model, example, leaf_modules=o.leaf_modules, frontend=frontend)
    if not space.prunable_groups:
        raise otograph.OtographError(f"{o.model}: no prunable group was found, nothing to prune:\n{space_table(space)}")
    say(f"search space: {space!r}")
    if kind == "flops" and not any(float(g.unit_flops.sum()) > 0 for g in space.prunable_groups):
        raise otograph.OtographError(f"{o.model}: no FLOPs could be attributed to the prunable groups, so a "
                                     f"FLOPs budget cannot be met; use --target-params or --sparsity")
    steps_per_epoch = len(data.train)
    total = o.epochs * steps_per_epoch
    start = int(round(o.pruning_start * total))
    span = max(o.periods, int(round(o.pruning_span * total)))
    init_state = copy.deepcopy(model.state_dict())

    with staged_dir(o.out, o.force) as stage:
        dense_hist, dense_acc, dense_seconds = None, None, 0.0
        if o.baseline:
            dense = copy.deepcopy(model)
            torch.manual_seed(o.seed)
            t0 = time.perf_counter()
            dense_hist = train(dense, _base_optimizer(dense, o), data, o.epochs, desc="dense baseline",
                               progress=o.progress)
            dense_seconds = time.perf_counter() - t0
            dense_acc = dense_hist.val_accuracy[-1] if dense_hist.val_accuracy else evaluate(dense, data.val)
            del dense
        model.load_state_dict(init_state)
        torch.manual_seed(o.seed)
        budget = {"flops": "target_flops_reduction", "params": "target_param_reduction",
                  "groups": "target_group_sparsity"}[kind]
        opt = HESSO(model, space, variant=o.optimizer, **_hyper(o), **{budget: value}, start_pruning_step=start,
                    pruning_steps=span, pruning_periods=o.periods, cric=o.cric or None)
        t0 = time.perf_counter()
        hist = train(model, opt, data, o.epochs, desc="HESSO", progress=o.progress, metrics=opt.metrics)
        train_seconds = time.perf_counter() - t0
        model.eval()
        trained_acc = evaluate(model, data.val)
        say(opt.summary())

        removed = space.zero_units(model)
        compact = otograph.compress(model, space)
        compact.eval()
        after_acc = evaluate(compact, data.val)
        ex = _exactness(model, compact, data)
        say(f"compact model: max |Δ| {ex['max_abs']:.3g} (float32), {ex['max_abs_f64']:.3g} (float64)")

        one = _one(example)
        lat_before = {str(b): latency_ms(model, one, b) for b in (1, 32)}
        lat_after = {str(b): latency_ms(compact, one, b) for b in (1, 32)}

        files: dict[str, Any] = {}
        files.update(save_compact(compact, example, stage))
        if o.save_reference:
            try:
                ep = export_program(model, normalize_inputs(example)[0])
                with atomic_write(stage / "reference.pt2") as f:
                    torch.export.save(ep, f)
                files["reference"] = "reference.pt2"
            except Exception as e:  # noqa: BLE001 - the reference is a convenience
                log.warning("could not export the trained full model: %s", e)
        write_text(stage / "removed_units.json", json.dumps(removed, indent=1))
        title = f"{o.model} ({type(model).__name__})"
        from otograph.drawing import render

        pic = render(space, stage / "search_space.svg", removed=removed, title=f"{title}, after pruning")
        files["search_space"] = pic.path.name
        if pic.message:
            say(pic.message)
        files["training_chart"] = _chart(stage, o, hist, dense_hist, (start, span // o.periods, o.periods),
                                         f"{title} on {o.data}: HESSO, {value:.0%} {kind} target")

        units = sum(g.num_units for g in space.groups)
        run = {
            "otograph_version": otograph.__version__,
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(o).items()},
            "model": {"spec": o.model, "class": type(model).__name__, "input_shape": list(loaded.input_shape or [])},
            "data": {"spec": o.data, "num_classes": data.num_classes, "train_size": _size(data.train),
                     "val_size": _size(data.val)},
            "training": {"epochs": o.epochs, "steps": total, "optimizer": o.optimizer, **_hyper(o),
                         "target": {"kind": kind, "value": value}, "cric": o.cric,
                         "pruning": {"start_step": start, "steps": span, "periods": o.periods},
                         "seconds": train_seconds, "baseline": "dense" if o.baseline else "trained",
                         "baseline_seconds": dense_seconds, "hesso": opt.metrics()},
            "before": {"params": count_params(model), "flops": count_flops(model, one),
                       "latency_ms": lat_before, "accuracy": dense_acc if o.baseline else trained_acc},
            "after": {"params": count_params(compact), "flops": count_flops(compact, one),
                      "latency_ms": lat_after, "accuracy": after_acc},
            "trained_accuracy": trained_acc,
            "exactness": ex,
            "space": {"groups": len(space.groups), "prunable": len(space.prunable_groups), "units": units,
                      "units_removed": sum(len(v) for v in removed.values()), "opaque": list(space.opaque)},
            "groups": [{"id": g.id, "units": g.num_units, "kept": g.num_units - len(removed.get(g.id, ())),
                        "prunable": g.prunable, "reason": g.reason} for g in space.groups],
            "threads": torch.get_num_threads(),
            "history": {"hesso": asdict(hist), "dense": asdict(dense_hist) if dense_hist else None},
            "files": files,
        }
        run["wall_seconds"] = time.perf_counter() - t_start
        write_text(stage / "run.json", json.dumps(run, indent=1, default=_json_default))
        write_text(stage / "report.md", render_report(run))
    return run


def _size(loader) -> int | None:
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):
        return None


def _json_default(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return str(x)
