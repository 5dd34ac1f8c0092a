"""What the benchmark scripts share: options, the result store, statistics, FLOPs, Torch-Pruning's
progressive pruning, tables and plots.

>>> mean_std([98.0, 98.5, 99.0])
(98.5, 0.5)
>>> pm([98.0, 98.5, 99.0])
'98.50 ± 0.50'
>>> table(["a", "b"], [[1, "x"]])
'| a | b |\\n|---|---|\\n| 1 | x |'
>>> table(["a", "b", "c"], [[1, 2, 3]], "lcr").splitlines()[1]
'|:---|:---:|---:|'
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["ROOT", "RESULTS", "DOCS", "options", "Store", "environment", "mean_std", "pm", "table",
           "torch_pruning", "count_flops", "count_params", "prune_to_flops", "line_plot", "finish", "log", "time_limit"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"


def log(msg: str) -> None:
    """One progress line on stderr, with the time (the full runs go to log files)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def options(doc: str | None, threads: int = 2) -> argparse.ArgumentParser:
    """The options every script takes (add your own to the returned parser)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few steps of everything (CI): results go to --out")
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for the JSON, the markdown and the plots (default: benchmarks/results and "
                         "docs/benchmarks.md for a full run; a temporary folder with --quick)")
    ap.add_argument("--threads", type=int, default=threads, help=f"torch threads (default {threads})")
    ap.add_argument("--redo", action="append", default=[],
                    help="rerun the stored runs whose key contains this text (repeatable); default: resume")
    return ap


def where(a: argparse.Namespace, name: str) -> tuple[Path, Path, Path]:
    """``(json, markdown, images folder)`` for a run of script ``name`` with options ``a``."""
    if a.out is None and a.quick:
        a.out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    if a.out is None:
        return RESULTS / f"{name}.json", DOCS, DOCS.parent / "images" / "benchmarks"
    a.out.mkdir(parents=True, exist_ok=True)
    return a.out / f"{name}.json", a.out / "benchmarks.md", a.out / "images"


class Store:
    """Results of one script, saved (atomically) after every run, so a crash loses at most one run and
    a second call resumes: :meth:`run` skips keys already stored unless a ``redo`` text matches them."""

    def __init__(self, path: Path, meta: dict[str, Any], redo: Iterable[str] = ()):
        self.path = Path(path)
        self.redo = list(redo)
        self.data: dict[str, Any] = {"meta": meta, "runs": {}}
        if self.path.exists():  # resume: the runs and any other records kept; the meta is this call's
            old = json.loads(self.path.read_text())
            self.data.update({k: v for k, v in old.items() if k != "meta"})
            self.data["runs"] = old.get("runs", {})

    @property
    def runs(self) -> dict[str, Any]:
        return self.data["runs"]

    def run(self, key: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if key in self.runs and not any(r in key for r in self.redo):
            return self.runs[key]
        log(f"run {key}")
        t0 = time.perf_counter()
        rec = fn()
        rec.setdefault("seconds", time.perf_counter() - t0)
        self.runs[key] = rec
        self.save()
        log(f"done {key}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in rec.items() if not isinstance(v, (dict, list))))
        return rec

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=False))
        os.replace(tmp, self.path)


def environment(threads: int) -> dict[str, Any]:
    """Versions, CPU and threads, and the commit, for the record."""
    def version(mod: str) -> str | None:
        try:
            return __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional packages
            return None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=False).stdout.strip() or None
    except OSError:
        commit = None
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version as dist_version
        tp_version = dist_version("torch-pruning") if torch_pruning() is not None else None
    except Exception:  # noqa: BLE001 - not installed
        tp_version = None
    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": version("transformers"),
            "torch_pruning": tp_version, "cpu": cpu, "cores": os.cpu_count(), "threads": threads,
            "commit": commit, "date": time.strftime("%Y-%m-%d")}


def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    xs = [float(x) for x in xs]
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def pm(xs: Sequence[float], digits: int = 2, scale: float = 1.0) -> str:
    """``mean ± std`` of ``xs`` (times ``scale``)."""
    if not xs:
        return "–"
    m, s = mean_std([x * scale for x in xs])
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A markdown table; ``align`` is one character per column, ``l``, ``c`` or ``r`` (default: all ``---``)."""
    sep = [{"l": ":---", "c": ":---:"}.get(c, "---:") for c in align] if align else ["---"] * len(head)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def time_limit(seconds: float, what: str):
    """Raise ``TimeoutError`` in the main thread when the block runs longer than ``seconds`` (SIGALRM;
    for the pure-Python loops of a peer library that may not end, e.g. Torch-Pruning's dependency graph
    on current Hugging Face LLaMA models, VainF/Torch-Pruning#527)."""
    def alarm(signum, frame):
        raise TimeoutError(f"{what} took longer than {seconds:g} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def torch_pruning():
    """The ``torch_pruning`` module, or None when the ``bench`` extra is not installed."""
    try:
        import torch_pruning as tp
    except ImportError:
        return None
    return tp


def count_flops(model: torch.nn.Module, example: Any) -> int:
    """FLOPs of one forward pass, counted the same way for every method (otograph's counter, which is
    ``torch.utils.flop_counter``'s formulas)."""
    from otograph.graph.cost import count_flops as flops

    return int(flops(model, example))


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prune_to_flops(pruner, model: torch.nn.Module, example: Any, cut: float,
                   measure: Callable[[torch.nn.Module], float] | None = None) -> int:
    """Torch-Pruning's progressive pruning (``reproduce/main.py::progressive_pruning``): ``pruner.step()``
    until the model's cost is at most ``(1 - cut)`` of what it was, or the pruner's steps run out.

    ``measure`` (default: FLOPs of ``example``) is the cost; returns the number of steps taken.
    """
    measure = measure or (lambda m: count_flops(m, example))
    was = model.training
    model.eval()
    base = measure(model)
    while measure(model) > (1.0 - cut) * base:
        pruner.step()
        if pruner.current_step == pruner.iterative_steps:
            break
    model.train(was)
    return pruner.current_step


COLORS = {"dense": "#444444", "HESSO": "#1f77b4", "HESSO-CRIC": "#17becf", "TP magnitude": "#ff7f0e",
          "TP Taylor": "#d62728", "TP group-norm SL": "#9467bd", "uniform from scratch": "#2ca02c"}


def line_plot(path: Path, series: dict[str, list[tuple[float, float, float]]], *, xlabel: str, ylabel: str,
              title: str, hlines: dict[str, float] | None = None, xpct: bool = True) -> Path:
    """One curve per method: ``series[name] = [(x, y, yerr), …]``; ``hlines`` are reference levels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = "osD^v<>ph*"
    for i, (name, pts) in enumerate(series.items()):
        pts = sorted(p for p in pts if p[1] is not None and math.isfinite(p[1]))
        if not pts:
            continue
        xs, ys, es = zip(*pts, strict=True)
        xs = [100 * x for x in xs] if xpct else list(xs)
        base = name.split(" (")[0]
        ax.errorbar(xs, ys, yerr=es, label=name, marker=markers[i % len(markers)], capsize=3, lw=1.5,
                    color=COLORS.get(base), linestyle="--" if "distil" in name else "-")
    for name, y in (hlines or {}).items():
        ax.axhline(y, color="#444444", lw=1, ls=":")
        ax.annotate(name, (ax.get_xlim()[0], y), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def finish(a: argparse.Namespace, md: Path, images: Path) -> None:
    """Regenerate the markdown page from every result file next to this run's."""
    from benchmarks import report

    results = RESULTS if a.out is None else a.out
    report.write(results, md, images)
    log(f"wrote {md}")
