"""Latency: CPU time of the compact model against the original's at a 50 % FLOPs cut, for
ResNet-50, MobileNetV3-Large, EfficientNet-B0, ViT-B/16 and the LM of ``benchmarks/lm.py``, with
``group_divisible`` 1, 8 and 16; the figure of merit is the latency cut over the FLOPs cut. (16 because
oneDNN's fp32 convolutions work on blocks of 16 channels on an AVX-512 CPU, 8 on AVX2: a width that is
not a multiple of the block is padded to one, and the padding is computed for nothing.)

    python benchmarks/latency.py             # full: writes benchmarks/results/latency.json, docs/benchmarks.md
    python benchmarks/latency.py --quick     # ResNet-18, a one-layer ViT and the tiny LM at 32x32, a 30 % cut,
                                             # one repeat (CI: the code path, not the figures)
    python benchmarks/latency.py --malloc cached resnet50   # glibc keeps freed memory: runs kept as resnet50@cached
    python benchmarks/latency.py --channels-last resnet50    # NHWC images and weights: kept as resnet50@cl
    python benchmarks/latency.py --tag xeon ...   # another machine's runs, kept beside these as NAME@xeon

Which units go: every prunable group keeps the same share of its units, rounded to a multiple of
``group_divisible`` (``hesso.uniform.uniform_units``: the share bisected on the exact cost model so the
FLOPs cut is at least the target), random initial weights: latency depends on the shapes, not on
the values. (Until 2026-11-27 this took one HESSO step by magnitude on random weights, which empties
the late, wide stages of a ResNet and keeps the early ones whole, a shape no trained run gives.) The compact
model comes from ``otograph.compress`` and is checked against the pruned model. The original is timed
as the graph otograph builds with nothing removed (the same frontend and code path as the compact
one). Timings: forward passes in eval mode under ``torch.inference_mode``, the original and both
compact models interleaved round by round (so the machine's load hits all alike), the median of the
rounds, after two warm-up passes. Each run records its machine, threads, allocator and rounds; the
table names them per run.

Memory: under glibc's default allocator, every tensor above the mmap threshold (32 MiB at most; one
batch-32 activation of ResNet-50 is 100 MB) is a fresh mapping whose pages the kernel zeroes on first
touch. On this project's VMs that is up to half of a batch-32 pass (MobileNetV3-Large 496 → 240 ms),
and its cost varies with the host. ``--malloc cached`` starts the script again with ``GLIBC_TUNABLES``
raising glibc's mmap and trim thresholds, so freed memory is reused, as jemalloc or tcmalloc (which
PyTorch's CPU performance guide recommends) would do.
"""

from __future__ import annotations

import copy
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as `python benchmarks/NAME.py`: the repository root holds the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    Store,
    count_flops,
    count_params,
    environment,
    finish,
    log,
    options,
    table,
    where,
)
from hesso.uniform import uniform_units

TITLE = "Latency: compact against original on CPU"
MODELS = ("resnet50", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16", "lm")
NAMES = {"resnet50": "ResNet-50", "mobilenet_v3_large": "MobileNetV3-Large", "efficientnet_b0": "EfficientNet-B0",
         "vit_b_16": "ViT-B/16", "lm": "LLaMA LM (benchmarks/lm.py)"}
CNNS = ("resnet50", "mobilenet_v3_large", "efficientnet_b0")
DIVISORS = (1, 8, 16)
BATCHES = (1, 32)
# glibc keeps freed blocks up to 4 GiB in the heap instead of unmapping them (see the module docstring)
CACHED_MALLOC = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184"


def malloc() -> str:
    """``"cached"`` when this process runs with :data:`CACHED_MALLOC`, else ``"system"``."""
    return "cached" if CACHED_MALLOC in os.environ.get("GLIBC_TUNABLES", "") else "system"


def build(name: str, quick: bool) -> tuple[torch.nn.Module, Any, str]:
    """``(model, example input of batch 1, frontend)``."""
    torch.manual_seed(0)
    if name == "lm":
        from dataclasses import replace

        from benchmarks import lm

        r = lm.Recipe()
        if quick:
            r = replace(r, hidden=32, intermediate=64, layers=2, heads=4, seq=32)
        return lm.build(r), {"input_ids": torch.randint(0, 256, (1, r.seq)), "use_cache": False}, "export"
    import torchvision

    size = 32 if quick else 224
    kw = {"image_size": size} if name.startswith("vit") else {}
    if quick and name.startswith("vit"):  # the same code path, a model small enough for CI
        kw.update(patch_size=8, num_layers=1, num_heads=4, hidden_dim=64, mlp_dim=128)
        return torchvision.models.VisionTransformer(**kw).eval(), torch.randn(1, 3, size, size), "fx"
    if quick and name == "resnet50":
        name = "resnet18"
    return torchvision.models.get_model(name, weights=None, **kw).eval(), torch.randn(1, 3, size, size), "fx"


def batched(example: Any, n: int) -> Any:
    if isinstance(example, dict):
        return {k: (v.expand(n, *v.shape[1:]).contiguous() if torch.is_tensor(v) else v) for k, v in example.items()}
    return example.expand(n, *example.shape[1:]).contiguous()


def call(model, x):
    return model(**x) if isinstance(x, dict) else model(x)


@torch.inference_mode()
def timings(models: dict[str, torch.nn.Module], x: Any, rounds: int, warmup: int = 2) -> dict[str, dict[str, float]]:
    """Median and quartiles (ms) of ``rounds`` interleaved passes of every model, after ``warmup`` passes."""
    for m in models.values():
        m.eval()
        for _ in range(warmup):
            call(m, x)
    ts: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(rounds):
        for k, m in models.items():
            t0 = time.perf_counter()
            call(m, x)
            ts[k].append(1000 * (time.perf_counter() - t0))
    out = {}
    for k, v in ts.items():
        q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
        out[k] = {"median": statistics.median(v), "q1": q[0], "q3": q[2], "runs": len(v)}
    return out


def run_model(name: str, quick: bool, rounds: dict[int, int], cut: float, batches: tuple[int, ...] = BATCHES,
              warmup: int = 2, channels_last: bool = False) -> dict[str, Any]:
    """Prune, compress and time one model. The fx frontend's compact graphs take any batch size, so one
    trace serves both; the export frontend's are traced at each batch size (same units removed).
    ``channels_last``: models fed images are timed, original and compact alike, in that memory format."""
    import otograph

    model, ex, frontend = build(name, quick)
    rec: dict[str, Any] = {"frontend": frontend, "flops": count_flops(model, ex), "params": count_params(model),
                           "rounds": {str(b): rounds[b] for b in batches}}
    graphs: dict[int, dict[str, torch.nn.Module]] = {}
    pruned = {}
    for d in DIVISORS:
        pruned[d] = copy.deepcopy(model)
    for b in batches:
        if frontend == "fx" and graphs:
            graphs[b] = graphs[BATCHES[0]]
            continue
        xb = batched(ex, b)
        space = otograph.search_space(model, xb, frontend=frontend)
        graphs[b] = {"original": otograph.compress(model, space)}
        for d in DIVISORS:
            if b == BATCHES[0]:
                space.zero_(pruned[d], uniform_units(space, cut, "flops", d))
            c = otograph.compress(pruned[d], space)
            check = otograph.verify(pruned[d], c, xb)
            graphs[b][f"gd{d}"] = c
            if b == BATCHES[0]:
                rec[f"gd{d}"] = {"flops_cut": 1 - count_flops(c, ex) / rec["flops"],
                                 "params_cut": 1 - count_params(c) / rec["params"], "max_abs_diff": check.max_abs}
    image = torch.is_tensor(ex) and ex.dim() == 4
    rec["memory_format"] = "channels_last" if channels_last and image else "contiguous"
    for b in batches:
        log(f"{name}: timing batch {b} ({rounds[b]} rounds)")
        x, ms = batched(ex, b), graphs[b]
        if channels_last and image:
            x = x.contiguous(memory_format=torch.channels_last)
            ms = {k: m.to(memory_format=torch.channels_last) for k, m in ms.items()}
        rec[f"batch{b}"] = timings(ms, x, rounds[b], warmup)
    return rec


def base(key: str) -> str:
    """The model of a run key (``resnet50@cached@xeon`` → ``resnet50``)."""
    return key.split("@", 1)[0]


def setting(meta: dict[str, Any], run: dict[str, Any]) -> str:
    """How a run was timed: machine, threads, torch, allocator, rounds (runs before 2026-11-27 kept
    theirs in the file's meta only)."""
    env = run.get("env", meta["env"])
    rounds = run.get("rounds", meta["rounds"])
    mem = ("glibc keeping freed memory (`--malloc cached`)" if env.get("malloc") == "cached"
           else "the system's malloc")
    if run.get("memory_format") == "channels_last":
        mem += ", channels-last images and weights (`--channels-last`)"
    return (f"{env['cpu']} ({env['cores']} cores), {env['threads']} threads, torch {env['torch']}, {mem}, "
            f"{', '.join(f'{n} rounds at batch {b}' for b, n in rounds.items())}, commit {env.get('commit')}, "
            f"{env.get('date')}")


def ratio(run: dict[str, Any], d: int, b: int) -> float | None:
    """Latency cut ÷ FLOPs cut of ``group_divisible=d`` at batch ``b`` (None: not timed)."""
    t = run.get(f"batch{b}")
    if t is None or f"gd{d}" not in run:
        return None
    return (1 - t[f"gd{d}"]["median"] / t["original"]["median"]) / run[f"gd{d}"]["flops_cut"]


def section(data: dict[str, Any], images: Path, rel: str) -> str:
    meta, runs = data["meta"], data["runs"]
    keys = sorted(runs, key=lambda k: (MODELS.index(base(k)), list(runs).index(k)))
    labels: dict[str, str] = {}  # setting → its letter, in the order the table meets them
    label = {k: labels.setdefault(setting(meta, runs[k]), "abcdefghijklmnopqrstuvwxyz"[len(labels)]) for k in keys}
    lines = [f"## {TITLE}", "",
             f"Random initial weights, input 224×224 (the LM: {meta.get('lm_seq', 256)} bytes), "
             f"{meta.get('selection', 'uniform widths (every group keeps the same share, rounded to `group_divisible`)')} "
             f"for a {meta['cut']:.0%} FLOPs target with `group_divisible` {', '.join(map(str, DIVISORS))}, compact model from "
             f"`otograph.compress`. Median CPU latency (ms) of interleaved rounds after {meta.get('warmup', 2)} warm-up "
             f"pass(es) (25th–75th percentile in the JSON); *run* names how each row was timed (below the table). "
             f"*Ratio* = latency cut ÷ FLOPs cut (1.0: time falls as much as FLOPs).", ""]
    rows = []
    for k in keys:
        x = runs[k]
        for d in (d for d in DIVISORS if f"gd{d}" in x):  # (runs before 16 was added lack it)
            g = x[f"gd{d}"]
            row = [NAMES[base(k)], label[k], str(d), f"{100 * g['flops_cut']:.1f} %", f"{100 * g['params_cut']:.1f} %"]
            for b in BATCHES:
                t = x.get(f"batch{b}")
                if t is None:
                    row += ["not timed", "–", "–"]
                    continue
                o, c = t["original"]["median"], t[f"gd{d}"]["median"]
                row += [f"{o:.1f} → {c:.1f}", f"{100 * (1 - c / o):.1f} %", f"**{ratio(x, d, b):.2f}**"]
            rows.append(row)
    head = ["model", "run", "group_divisible", "FLOPs cut", "params cut"]
    for b in BATCHES:
        head += [f"batch {b}: ms", "latency cut", "ratio"]
    lines += [table(head, rows, "lcr" + "r" * (len(head) - 3)), ""]
    lines += [f"*{v}*: {s}." for s, v in labels.items()] + [""]
    goal = []
    for v in labels.values():
        ok = {d: [(NAMES[base(k)], ratio(runs[k], d, 32)) for k in keys
                  if label[k] == v and base(k) in CNNS and ratio(runs[k], d, 32) is not None] for d in (8, 16)}
        if ok[8]:
            met = all(r >= 0.8 for _, r in ok[8])
            goal.append(f"- *{v}*: **{'met' if met else 'not met'}** (" + ", ".join(f"{n} {r:.2f}" for n, r in ok[8]) + ")"
                        + ("; with `group_divisible=16`: " + ", ".join(f"{n} {r:.2f}" for n, r in ok[16]) if ok[16] else "")
                        + ".")
    if goal:
        lines += ["**Goal** (latency cut ≥ 0.8 × FLOPs cut at batch 32 for the CNNs with `group_divisible=8`; 16 is "
                  "oneDNN's fp32 channel block on an AVX-512 CPU):", "", *goal, ""]
    lines += plot(runs, keys, label, images, rel)
    return "\n".join(lines)


def plot(runs: dict[str, Any], keys: list[str], label: dict[str, str], images: Path, rel: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not keys:
        return []
    fig, axes = plt.subplots(len(BATCHES), 1, figsize=(max(9.0, 0.6 * len(keys)), 1.2 + 2.6 * len(BATCHES)),
                             sharex=True, sharey=True)
    w = 0.8 / len(DIVISORS)
    for ax, b in zip(axes, BATCHES, strict=True):
        for i, d in enumerate(DIVISORS):
            vals = [ratio(runs[k], d, b) for k in keys]
            ax.bar([j + (i - (len(DIVISORS) - 1) / 2) * w for j in range(len(keys))],
                   [float("nan") if v is None else v for v in vals], w, label=f"group_divisible={d}")
        ax.axhline(0.8, color="#444444", lw=1, ls=":")
        ax.axhline(1.0, color="#444444", lw=1)
        ax.set_xticks(range(len(keys)), [f"{NAMES[base(k)].split(' (')[0]} ({label[k]})" for k in keys],
                      rotation=35, ha="right", fontsize=8)
        ax.set_title(f"batch {b}", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.set_ylabel("latency cut ÷ FLOPs cut", fontsize=8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    images.mkdir(parents=True, exist_ok=True)
    path = images / "latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [f"![latency cut over FLOPs cut, per run]({rel}/{path.name})", ""]


def main(argv: list[str] | None = None) -> int:
    ap = options(__doc__)
    ap.add_argument("models", nargs="*", default=list(MODELS), help=f"any of {', '.join(MODELS)}")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per batch size (default 15 at batch 1, 7 at 32)")
    ap.add_argument("--rounds32", type=int, default=None, help="timed rounds at batch 32 (default: --rounds)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed passes of each model first (default 2)")
    ap.add_argument("--no-batch32", default="", help="comma-separated models timed at batch 1 only (time budget)")
    ap.add_argument("--malloc", choices=("system", "cached"), default="system",
                    help="system: the default allocator; cached: start again with GLIBC_TUNABLES keeping freed "
                         "memory (see above); the runs are kept as NAME@cached")
    ap.add_argument("--channels-last", action="store_true",
                    help="time the image models (original and compact) in channels-last memory format, as PyTorch's "
                         "CPU performance guide advises for CNNs; the runs are kept as NAME@cl")
    ap.add_argument("--tag", default="", help="kept as NAME@TAG: another machine's runs beside this one's")
    a = ap.parse_args(argv)
    if a.malloc == "cached" and malloc() != "cached":  # glibc reads its tunables once, at start-up
        if argv is not None:
            ap.error(f"--malloc cached: set GLIBC_TUNABLES={CACHED_MALLOC} before Python starts")
        env = dict(os.environ, GLIBC_TUNABLES=":".join(filter(None, [os.environ.get("GLIBC_TUNABLES"), CACHED_MALLOC])))
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    torch.set_num_threads(a.threads)
    rounds = {1: 15, 32: 7} if not a.quick else {1: 2, 32: 1}
    if a.rounds:
        rounds = dict.fromkeys(BATCHES, a.rounds)
    if a.rounds32:
        rounds[32] = a.rounds32
    only1 = {x for x in a.no_batch32.split(",") if x}
    models = a.models if not a.quick else ["resnet50", "vit_b_16", "lm"] if a.models == list(MODELS) else a.models
    out_json, md, images = where(a, "latency")
    cut = 0.3 if a.quick else 0.5
    meta = {"env": environment(a.threads), "cut": cut, "rounds": rounds, "warmup": a.warmup,
            "selection": "uniform widths (every group keeps the same share, rounded to `group_divisible`)",
            "batch1_only": sorted(only1), "lm_seq": 32 if a.quick else 256}
    store = Store(out_json, meta, a.redo)
    env = {**meta["env"], "malloc": malloc()}
    suffix = "".join(f"@{t}" for t in (a.tag, "cached" if a.malloc == "cached" else "", "cl" if a.channels_last else "")
                     if t)
    for name in models:
        store.run(name + suffix, lambda name=name: {**run_model(name, a.quick, rounds, cut, (1,) if name in only1
                                                               else BATCHES, a.warmup, a.channels_last), "env": env})
    finish(a, md, images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
