"""Vision: the residual CNN of ``otograph prune`` (SmallResNet) on scikit-learn's digits, pruned to
50 % and 80 % fewer FLOPs by HESSO, HESSO-CRIC and Torch-Pruning, from scratch and from trained weights.

    python benchmarks/digits.py              # full: 3 seeds, writes benchmarks/results/digits.json, docs/benchmarks.md
    python benchmarks/digits.py --quick      # 2 epochs of everything, one seed (CI)
    python benchmarks/digits.py --tune       # HESSO and Torch-Pruning variants on a split of the training set

Every method gets the same data (the fixed split of ``otograph.cli.digits``: 1,437 training and 360
held-out images), the same initial weights and shuffling for a seed, the same optimizer (SGD, lr 0.05,
momentum 0.9, weight decay 5e-4, batch 64, cosine learning rate) and the same total epochs (30).

* **dense**: 30 epochs, no pruning.
* **HESSO / HESSO-CRIC**: 30 epochs with ``hesso.HESSO`` (FLOPs target), then ``otograph.compress``.
* **TP magnitude / TP Taylor**: 15 dense epochs, Torch-Pruning's ``BasePruner`` with
  ``GroupMagnitudeImportance(p=2)`` / ``GroupTaylorImportance()`` (gradients of 10 training batches),
  global, progressive to the FLOPs target, then 15 epochs of fine-tuning.
* **TP group-norm SL**: 15 epochs of sparse learning with ``GroupNormPruner(reg=5e-4)`` and
  ``GroupMagnitudeImportance(p=2, normalizer="max")`` (no weight decay while regularising, as in
  Torch-Pruning's ``reproduce/main.py``), progressive pruning, 15 epochs of fine-tuning.
* **uniform from scratch**: SmallResNet with the largest width whose FLOPs are cut at least as much,
  trained 30 epochs.

*From trained weights*: every method starts from the dense model of the same seed and trains 30 more
epochs (TP magnitude/Taylor prune first and fine-tune 30; group-norm SL learns 15 and fine-tunes 15;
the uniform model, which cannot reuse the weights, trains 60 epochs from scratch), each with and
without distillation from the dense model (``hesso.Teacher``: T = 4, alpha = 0.5).
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as `python benchmarks/NAME.py`: the repository root holds the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    Store,
    count_flops,
    count_params,
    environment,
    finish,
    line_plot,
    log,
    mean_std,
    options,
    pm,
    prune_to_flops,
    table,
    torch_pruning,
    where,
)

TITLE = "Vision: a residual CNN on scikit-learn's digits"

METHODS = ("dense", "HESSO", "HESSO-CRIC", "TP magnitude", "TP Taylor", "TP group-norm SL", "uniform from scratch")
TP_METHODS = ("TP magnitude", "TP Taylor", "TP group-norm SL")


@dataclass(frozen=True)
class Recipe:
    """Every hyper-parameter of a run (stored with the results)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    width: int = 16
    # HESSO: the periods start after `start` of all steps and cover `span` of them
    start: float = 0.1
    span: float = 0.4
    periods: int = 4
    start_trained: float = 0.0  # from trained weights
    span_trained: float = 0.4
    importance: tuple[tuple[str, float], ...] | None = None  # saliency weights (None: HESSO's default)
    # Torch-Pruning
    tp_steps: int = 400
    taylor_batches: int = 10
    sl_reg: float = 5e-4
    tp_lr: str = "restart"  # "restart": each phase its own cosine from lr; "continue": one cosine over all epochs
    # distillation
    temperature: float = 4.0
    alpha: float = 0.5


@dataclass
class Data:
    x_tr: torch.Tensor
    y_tr: torch.Tensor
    x_va: torch.Tensor
    y_va: torch.Tensor


def load_data(tune: bool) -> Data:
    """The fixed split; with ``tune`` the held-out images are not loaded at all: the training images
    are split again (stratified 80/20, ``random_state=1``) and the second part is the validation set."""
    from otograph.cli.digits import digits_tensors

    x_tr, y_tr, x_va, y_va = digits_tensors()
    if not tune:
        return Data(x_tr, y_tr, x_va, y_va)
    from sklearn.model_selection import train_test_split

    a, b = train_test_split(torch.arange(len(y_tr)).numpy(), test_size=0.2, stratify=y_tr.numpy(), random_state=1)
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return Data(x_tr[a], y_tr[a], x_tr[b], y_tr[b])


# ---------------------------------------------------------------------------------------------- training


def model_for(r: Recipe, seed: int, width: int | None = None) -> torch.nn.Module:
    from otograph.cli.models import SmallResNet

    torch.manual_seed(seed)
    return SmallResNet(width=width or r.width)


def steps_per_epoch(r: Recipe, d: Data) -> int:
    return math.ceil(len(d.y_tr) / r.batch_size)


def sgd(r: Recipe, model: torch.nn.Module, weight_decay: float | None = None) -> torch.optim.Optimizer:
    wd = r.weight_decay if weight_decay is None else weight_decay
    return torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, weight_decay=wd)


def cosine(opt: torch.optim.Optimizer, total: int, done: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine from the optimizer's lr to 0 over ``total`` steps, ``done`` of them already taken."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k + done, total) / total)))


def fit(model: torch.nn.Module, opt: torch.optim.Optimizer, d: Data, r: Recipe, epochs: int, g: torch.Generator, *,
        sched=None, teacher=None, regularize=None) -> None:
    """``epochs`` epochs of minibatch training (cross-entropy, or distillation with ``teacher``)."""
    sched = sched or cosine(opt, epochs * steps_per_epoch(r, d))
    n = len(d.y_tr)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(n, generator=g).split(r.batch_size):
            x, y = d.x_tr[idx], d.y_tr[idx]
            out = model(x)
            loss = F.cross_entropy(out, y) if teacher is None else teacher.loss(out, teacher(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if regularize is not None:
                regularize(model)
            opt.step()
            sched.step()


@torch.no_grad()
def accuracy(model: torch.nn.Module, d: Data) -> float:
    model.eval()
    return 100.0 * float((model(d.x_va).argmax(1) == d.y_va).float().mean())


def outcome(model: torch.nn.Module, d: Data, base_flops: int, base_params: int) -> dict[str, Any]:
    flops, params = count_flops(model, d.x_tr[:1]), count_params(model)
    return {"acc": accuracy(model, d), "flops": flops, "params": params, "flops_cut": 1 - flops / base_flops,
            "params_cut": 1 - params / base_params}


def teacher_for(r: Recipe, dense: torch.nn.Module):
    from hesso import Teacher

    return Teacher(dense, temperature=r.temperature, alpha=r.alpha)


# ---------------------------------------------------------------------------------------------- methods


def run_dense(r: Recipe, d: Data, seed: int) -> tuple[dict[str, Any], torch.nn.Module]:
    model = model_for(r, seed)
    base = count_flops(model, d.x_tr[:1]), count_params(model)
    fit(model, sgd(r, model), d, r, r.epochs, torch.Generator().manual_seed(seed))
    return outcome(model, d, *base), model


def run_hesso(r: Recipe, d: Data, seed: int, cut: float, *, cric: bool = False, init: dict | None = None,
              teacher=None) -> dict[str, Any]:
    import otograph
    from hesso import CRIC, HESSO, Target

    model = model_for(r, seed)
    if init is not None:
        model.load_state_dict(init)
    base = count_flops(model, d.x_tr[:1]), count_params(model)
    space = otograph.search_space(model, d.x_tr[:2])
    total = r.epochs * steps_per_epoch(r, d)
    start, span = (r.start, r.span) if init is None else (r.start_trained, r.span_trained)
    steps = max(r.periods, round(span * total))
    opt = HESSO(model, space, variant="sgd", lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay,
                target=Target("flops", cut), start_pruning_step=min(round(start * total), total - steps),
                pruning_steps=steps, pruning_periods=r.periods, cric=CRIC() if cric else None,
                importance=dict(r.importance) if r.importance else None)
    fit(model, opt, d, r, r.epochs, torch.Generator().manual_seed(seed), teacher=teacher)
    assert opt.metrics()["stage"] == "done", opt.metrics()
    compact = otograph.compress(model, space)
    out = outcome(compact, d, *base)
    out["target_flops_cut"] = cut
    out["hesso_flops_cut"] = opt.metrics()["flops_reduction"]  # HESSO's own count (per-unit costs summed)
    return out


def tp_pruner(tp, r: Recipe, model: torch.nn.Module, example: torch.Tensor, method: str):
    """The pruner and importance of ``method``, as Torch-Pruning's ``reproduce/main.py`` builds them."""
    common = dict(global_pruning=True, pruning_ratio=1.0, iterative_steps=r.tp_steps, max_pruning_ratio=1.0,
                  ignored_layers=[model.fc])
    was = model.training
    model.eval()  # tracing runs the example through the model: no BatchNorm statistics from it
    if method == "TP magnitude":
        p = tp.pruner.BasePruner(model, example, importance=tp.importance.GroupMagnitudeImportance(p=2), **common)
    elif method == "TP Taylor":
        p = tp.pruner.BasePruner(model, example, importance=tp.importance.GroupTaylorImportance(), **common)
    elif method == "TP group-norm SL":
        p = tp.pruner.GroupNormPruner(model, example, reg=r.sl_reg,
                                      importance=tp.importance.GroupMagnitudeImportance(p=2, normalizer="max"),
                                      **common)
    else:
        raise KeyError(method)
    model.train(was)
    return p


def taylor_gradients(model: torch.nn.Module, d: Data, r: Recipe, g: torch.Generator, batches: int) -> None:
    """Accumulate the loss gradients of ``batches`` training batches (what ``GroupTaylorImportance`` reads)."""
    model.eval()
    model.zero_grad(set_to_none=True)
    for idx in list(torch.randperm(len(d.y_tr), generator=g).split(r.batch_size))[:batches]:
        F.cross_entropy(model(d.x_tr[idx]), d.y_tr[idx]).backward()


def run_tp(r: Recipe, d: Data, seed: int, cut: float, method: str, *, init: dict | None = None,
           teacher=None) -> dict[str, Any]:
    tp = torch_pruning()
    model = model_for(r, seed)
    if init is not None:
        model.load_state_dict(init)
    example = d.x_tr[:1]
    base = count_flops(model, example), count_params(model)
    g = torch.Generator().manual_seed(seed)
    sl = method == "TP group-norm SL"
    first = 0 if (init is not None and not sl) else r.epochs // 2
    second = r.epochs - first
    spe = steps_per_epoch(r, d)
    pruner = tp_pruner(tp, r, model, example, method)
    if first:
        opt = sgd(r, model, weight_decay=0.0 if sl else None)
        sched = cosine(opt, first * spe) if r.tp_lr == "restart" else cosine(opt, r.epochs * spe)
        fit(model, opt, d, r, first, g, sched=sched, teacher=teacher, regularize=pruner.regularize if sl else None)
    if method == "TP Taylor":
        taylor_gradients(model, d, r, g, r.taylor_batches)
    steps = prune_to_flops(pruner, model, example, cut)
    model.zero_grad(set_to_none=True)
    del pruner
    opt = sgd(r, model)
    sched = cosine(opt, second * spe) if r.tp_lr == "restart" else cosine(opt, r.epochs * spe, first * spe)
    fit(model, opt, d, r, second, g, sched=sched, teacher=teacher)
    out = outcome(model, d, *base)
    out.update(target_flops_cut=cut, tp_steps=steps)
    return out


def slim_width(r: Recipe, d: Data, cut: float) -> int:
    """The largest width whose FLOPs are at most ``1 - cut`` of the full width's."""
    full = count_flops(model_for(r, 0), d.x_tr[:1])
    return max(w for w in range(1, r.width + 1) if count_flops(model_for(r, 0, w), d.x_tr[:1]) <= (1 - cut) * full)


def run_slim(r: Recipe, d: Data, seed: int, cut: float, *, epochs: int | None = None, teacher=None) -> dict[str, Any]:
    full = model_for(r, seed)
    base = count_flops(full, d.x_tr[:1]), count_params(full)
    w = slim_width(r, d, cut)
    model = model_for(r, seed, w)
    epochs = epochs or r.epochs
    fit(model, sgd(r, model), d, r, epochs, torch.Generator().manual_seed(seed), teacher=teacher)
    out = outcome(model, d, *base)
    out.update(width=w, epochs=epochs, target_flops_cut=cut)
    return out


# ---------------------------------------------------------------------------------------------- the plan


def plan(store: Store, r: Recipe, d: Data, seeds: list[int], cuts: list[float], trained_cut: float | None,
         methods: tuple[str, ...] = METHODS, prefix: str = "", quick: bool = False) -> None:
    """Run (or resume) every experiment; keys are ``setting/method/cut/seed``."""
    have_tp = torch_pruning() is not None
    if not have_tp:
        log("WARNING: torch_pruning is not installed (pip install 'otograph[bench]'): the Torch-Pruning "
            "methods are SKIPPED, their rows stay empty")
    dense_models: dict[int, torch.nn.Module] = {}

    def dense(seed: int) -> torch.nn.Module:
        if seed not in dense_models:
            rec, model = run_dense(r, d, seed)
            store.run(f"{prefix}scratch/dense/seed{seed}", lambda rec=rec: rec)
            dense_models[seed] = model
        return dense_models[seed]

    for seed in seeds:
        key = f"{prefix}scratch/dense/seed{seed}"
        if key not in store.runs or any(x in key for x in store.redo) or trained_cut is not None:
            dense(seed)
        for cut in cuts:
            for m in methods:
                k = f"{prefix}scratch/{m}/{cut:g}/seed{seed}"
                if m == "dense" or (m in TP_METHODS and not have_tp):
                    continue
                if m.startswith("HESSO"):
                    store.run(k, lambda cut=cut, m=m, seed=seed: run_hesso(r, d, seed, cut, cric=m == "HESSO-CRIC"))
                elif m in TP_METHODS:
                    store.run(k, lambda cut=cut, m=m, seed=seed: run_tp(r, d, seed, cut, m))
                else:
                    store.run(k, lambda cut=cut, seed=seed: run_slim(r, d, seed, cut))
        if trained_cut is None:
            continue
        init = copy.deepcopy(dense(seed).state_dict())
        for distil in (False, True):
            setting = "trained-distil" if distil else "trained"
            cut = trained_cut
            for m in methods:
                if m == "dense" or (m in TP_METHODS and not have_tp) or (quick and m not in ("HESSO", "TP magnitude")):
                    continue
                k = f"{prefix}{setting}/{m}/{cut:g}/seed{seed}"

                def go(m=m, distil=distil, cut=cut, seed=seed, init=init):
                    t = teacher_for(r, dense(seed)) if distil else None
                    if m.startswith("HESSO"):
                        return run_hesso(r, d, seed, cut, cric=m == "HESSO-CRIC", init=init, teacher=t)
                    if m in TP_METHODS:
                        return run_tp(r, d, seed, cut, m, init=init, teacher=t)
                    return run_slim(r, d, seed, cut, epochs=2 * r.epochs, teacher=t)
                store.run(k, go)


#: Variants tried with --tune (on the split of the training set only), as overrides of the recipe.
TUNE: dict[str, dict[str, Any]] = {
    "default": {},
    "tp-continue": {"tp_lr": "continue"},
    "hesso-default": {},  # HESSO alone with the recipe above (the baseline for more seeds of the variants)
    # HESSO's schedule: when the periods run, how many, and so how long the fine-tuning tail is
    "hesso-early": {"start": 0.05, "span": 0.25},
    "hesso-late": {"start": 0.25, "span": 0.35},
    "hesso-periods10": {"periods": 10},
    # HESSO's saliency weights
    "hesso-magnitude": {"importance": (("magnitude", 1.0),)},
    "hesso-taylor": {"importance": (("taylor_first_order", 0.5), ("taylor_second_order", 0.5))},
    # the MiniLM benchmark's recipe (chosen there on the training loss), and each half of it alone
    "hesso-taylor1": {"importance": (("taylor_first_order", 1.0),)},
    "hesso-short": {"span": 0.05},
    "hesso-minilm": {"importance": (("taylor_first_order", 1.0),), "span": 0.05},
}


def tune(store: Store, r: Recipe, d: Data, seeds: list[int], cuts: list[float], names: list[str]) -> None:
    for name in names:
        v = replace(r, **TUNE[name])
        methods = TP_METHODS if name.startswith("tp-") else ("HESSO",) if name != "default" else METHODS
        plan(store, v, d, seeds, cuts, None, methods=methods, prefix=f"{name}:")
        store.data.setdefault("variants", {})[name] = {k: (list(v) if isinstance(v, tuple) else v)
                                                       for k, v in TUNE[name].items()}
    store.save()


# ---------------------------------------------------------------------------------------------- the page


def collect(runs: dict[str, Any], prefix: str = "") -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """``{(setting, method, cut): [record per seed]}`` for keys starting with ``prefix``."""
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for key, rec in runs.items():
        if not key.startswith(prefix) or (not prefix and ":" in key):
            continue
        parts = key[len(prefix):].split("/")
        setting, method = parts[0], parts[1]
        cut = parts[2] if len(parts) == 4 else ""
        out.setdefault((setting, method, cut), []).append(rec)
    return out


def _cell(recs: list[dict[str, Any]] | None, field: str = "acc", digits: int = 2, full: int = 0) -> str:
    """``mean ± std``, with the number of seeds when fewer than ``full`` ran."""
    if not recs:
        return "–"
    return pm([x[field] for x in recs], digits) + (f" (n={len(recs)})" if len(recs) < full else "")


def _cut(recs: list[dict[str, Any]] | None, field: str = "flops_cut") -> str:
    return f"{100 * mean_std([x[field] for x in recs])[0]:.1f} %" if recs else "–"


def section(data: dict[str, Any], images: Path, rel: str) -> str:
    meta, runs = data["meta"], data["runs"]
    r = meta["recipe"]
    g = collect(runs)
    cuts = sorted({c for (_, _, c) in g if c}, key=float)
    dense = g.get(("scratch", "dense", ""), [])
    seeds = len(dense)
    env = meta["env"]
    lines = [f"## {TITLE}", "",
             f"SmallResNet (width {r['width']}: stem, three residual blocks, {meta.get('dense_params', '?'):,} "
             f"parameters, {meta.get('dense_flops', 0) / 1e6:.2f} MFLOPs per image) on scikit-learn's digits, "
             f"fixed split (1,437 training, 360 held-out images), seeds {meta['seeds']} (initial weights and "
             f"shuffling), {r['epochs']} epochs for every method, SGD lr {r['lr']}, momentum {r['momentum']}, "
             f"weight decay {r['weight_decay']}, batch {r['batch_size']}, cosine learning rate to 0. HESSO: FLOPs "
             f"target, {r['periods']} pruning periods from {r['start']:.0%} of the steps over {r['span']:.0%} of them "
             f"(from trained weights: from {r['start_trained']:.0%} over {r['span_trained']:.0%}); saliency weights "
             f"{dict(r['importance']) if r['importance'] else 'HESSO defaults (0.2 each)'}; CRIC with its defaults "
             f"(3 cycles). Torch-Pruning {env.get('torch_pruning')}: `iterative_steps={r['tp_steps']}`, Taylor "
             f"gradients from {r['taylor_batches']} batches, group-norm `reg={r['sl_reg']}`, fine-tuning learning rate "
             f"{'restarted (a fresh cosine per phase)' if r['tp_lr'] == 'restart' else 'continuing one cosine'}. "
             f"Distillation: T = {r['temperature']:g}, alpha = {r['alpha']:g}. "
             f"Accuracy is the compact (or Torch-Pruning's pruned) model's, on the 360 held-out images "
             f"(one image = 0.28 points); *FLOPs cut* is measured on that model. Machine: {env['cpu']}, "
             f"{env['threads']} threads, torch {env['torch']}, commit {env.get('commit')}, {env.get('date')}.", ""]
    if dense:
        lines += [f"Dense: **{pm([x['acc'] for x in dense])} %** ({seeds} seeds). *n=k*: only k of the "
                  f"{len(meta['seeds'])} seeds ran in the time this run had.", ""]
    head = ["method"] + [h for c in cuts for h in (f"acc @ {float(c):.0%} (%)", "FLOPs cut", "params cut")]
    rows = []
    for m in METHODS[1:]:
        row = [m]
        for c in cuts:
            recs = g.get(("scratch", m, c))
            row += [_cell(recs, full=len(meta["seeds"])), _cut(recs), _cut(recs, "params_cut")]
        if any(x != "–" for x in row[1:]):
            rows.append(row)
    lines += ["### From scratch", "", table(head, rows, "l" + "r" * (len(head) - 1)), ""]
    tcuts = sorted({c for (s, _, c) in g if s.startswith("trained")}, key=float)
    for c in tcuts:
        rows = []
        for m in METHODS[1:]:
            a, b = g.get(("trained", m, c)), g.get(("trained-distil", m, c))
            if a or b:
                n = len(meta["seeds"])
                rows.append([m, _cell(a, full=n), _cell(b, full=n), _cut(a or b), _cut(a or b, "params_cut")])
        lines += [f"### From the trained dense weights, {float(c):.0%} FLOPs target", "",
                  f"{r['epochs']} more epochs for every method (the uniform model: {2 * r['epochs']} epochs from "
                  f"scratch, the same total).", "",
                  table(["method", "acc (%)", "acc with distillation (%)", "FLOPs cut", "params cut"], rows,
                        "lrrrr"), ""]
    # the plot: accuracy against FLOPs cut, one curve per method
    series: dict[str, list[tuple[float, float, float]]] = {}
    for (setting, m, c), recs in g.items():
        if m == "dense" or not c:
            continue
        name = m if setting == "scratch" else f"{m} ({'from trained, distilled' if 'distil' in setting else 'from trained'})"
        if setting != "scratch" and not m.startswith(("HESSO", "TP")):
            continue
        mx, _ = mean_std([x["flops_cut"] for x in recs])
        my, sy = mean_std([x["acc"] for x in recs])
        series.setdefault(name, []).append((mx, my, sy))
    scratch = {k: v for k, v in series.items() if "(" not in k}
    if scratch:
        p = line_plot(images / "digits_scratch.png", scratch, xlabel="FLOPs cut (%)", ylabel="held-out accuracy (%)",
                      title=f"SmallResNet on digits, from scratch ({seeds} seeds, mean ± std)",
                      hlines={"dense": mean_std([x['acc'] for x in dense])[0]} if dense else None)
        lines += [f"![accuracy against FLOPs cut, from scratch]({rel}/{p.name})", ""]
    trained = {k: v for k, v in series.items() if "(" in k}
    if trained:
        p = line_plot(images / "digits_trained.png", trained, xlabel="FLOPs cut (%)", ylabel="held-out accuracy (%)",
                      title="SmallResNet on digits, from trained weights (mean ± std)",
                      hlines={"dense": mean_std([x['acc'] for x in dense])[0]} if dense else None)
        lines += [f"![accuracy against FLOPs cut, from trained weights]({rel}/{p.name})", ""]
    lines += goals(g, cuts, dense)
    if "tune" in data:
        lines += tune_section(data["tune"])
    return "\n".join(lines)


def goals(g, cuts, dense) -> list[str]:
    out = ["**Goals** (mean over seeds):", ""]
    for c in cuts:
        h = g.get(("scratch", "HESSO", c))
        tps = {m: g.get(("scratch", m, c)) for m in TP_METHODS if g.get(("scratch", m, c))}
        if not h or not tps:
            continue
        hm = mean_std([x["acc"] for x in h])[0]
        best, bm = max(((m, mean_std([x["acc"] for x in v])[0]) for m, v in tps.items()), key=lambda t: t[1])
        out.append(f"* {float(c):.0%}: HESSO {hm:.2f} % vs best Torch-Pruning ({best}) {bm:.2f} %: "
                   f"**{'met' if hm >= bm else 'not met'}**")
        if float(c) == 0.5 and dense:
            dm = mean_std([x["acc"] for x in dense])[0]
            out.append(f"* 50 %: HESSO within 0.3 points of dense ({dm:.2f} %): "
                       f"**{'met' if hm >= dm - 0.3 else 'not met'}** ({hm - dm:+.2f} points)")
    return out + [""]


def tune_section(t: dict[str, Any]) -> list[str]:
    """The variants tried on the split of the training set (never on the held-out images)."""
    runs = t["runs"]
    variants = t.get("variants", {})
    cuts: set[str] = set()
    per: dict[tuple[str, str], dict[str, list]] = {}
    for name in variants:
        g = collect(runs, f"{name}:")
        for (setting, m, c), recs in g.items():
            if setting == "scratch" and c:
                cuts.add(c)
                per.setdefault((name, m), {})[c] = recs
    cs = sorted(cuts, key=float)
    rows = []
    for (name, m), by in sorted(per.items()):
        ov = ", ".join(f"{k}={v}" for k, v in variants[name].items()) or "the recipe above"
        rows.append([name, m, ov] + [f"{_cell(by.get(c))}, n={len(by.get(c) or [])} ({_cut(by.get(c))})" for c in cs])
    return ["### Tuning, on a split of the training set only", "",
            "The 1,437 training images split again (stratified 80/20, `random_state=1`): trained on 1,149, "
            "accuracy on the other 288 (one image = 0.35 points); the held-out images were not used. Cells: accuracy "
            "(mean ± std over n seeds; 0.00 for one seed), FLOPs cut.", "",
            table(["variant", "method", "change", *[f"@ {float(c):.0%}" for c in cs]], rows), ""]


def main(argv: list[str] | None = None) -> int:
    ap = options(__doc__, threads=1)
    ap.add_argument("--tune", nargs="*", default=None, metavar="VARIANT",
                    help=f"run tuning variants on a split of the training set ({', '.join(TUNE)}; none: all)")
    ap.add_argument("--seeds", type=int, nargs="*", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    r = Recipe()
    seeds, cuts, trained_cut = [0, 1, 2], [0.5, 0.8], 0.5
    if a.quick:  # one seed, one cut, three epochs on 256 images; from trained weights only HESSO and TP magnitude
        r = replace(r, epochs=3, batch_size=32, periods=2, tp_steps=20, taylor_batches=2)
        seeds, cuts = [0], [0.5]
    seeds = a.seeds if a.seeds is not None else seeds
    out_json, md, images = where(a, "digits")
    d = load_data(tune=a.tune is not None)
    if a.quick:
        d = Data(d.x_tr[:256], d.y_tr[:256], d.x_va, d.y_va)
    meta = {"recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(r).items()},
            "seeds": seeds, "cuts": cuts, "trained_cut": trained_cut, "env": environment(a.threads),
            "dense_flops": count_flops(model_for(r, 0), d.x_tr[:1]), "dense_params": count_params(model_for(r, 0))}
    if a.tune is not None:
        path = out_json.with_name("digits_tune.json")
        store = Store(path, meta, a.redo)
        tune(store, r, d, seeds, cuts, a.tune or list(TUNE))
        return 0
    store = Store(out_json, meta, a.redo)
    plan(store, r, d, seeds, cuts, trained_cut, quick=a.quick)
    tune_file = out_json.with_name("digits_tune.json")
    if tune_file.exists():
        import json

        store.data["tune"] = json.loads(tune_file.read_text())
    store.save()
    finish(a, md, images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
