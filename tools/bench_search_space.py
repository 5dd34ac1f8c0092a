"""How long building the search space takes, next to Torch-Pruning's dependency graph.

    python tools/bench_search_space.py                 # all torchvision classifiers, writes docs/search_space_speed.md
    python tools/bench_search_space.py resnet50 vit_b_16 --repeats 5
    python tools/bench_search_space.py --quick         # three small models, one repeat (CI)
    python tools/bench_search_space.py efficientnet_b0 --phases   # where otograph's time goes

For every model (random weights, input 1×3×224×224, batch 1): the median wall time of
``otograph.search_space(model, x)`` and, interleaved with it in the same process, of Torch-Pruning's
``DependencyGraph().build_dependency(model, example_inputs=x)`` (when ``torch_pruning`` is installed:
``pip install 'otograph[bench]'``). Ratios compare the two on the same machine at the same moment;
the table reports the median ratio and the slowest models. Torch threads: 1 (both tools).
``--phases`` splits otograph's time (medians): the fx trace, the one shape-and-FLOPs pass, the
dependency graph, the rules, and grouping with the cost model.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import torch

QUICK = ["resnet18", "mobilenet_v3_small", "efficientnet_b0"]
SKIP = {"vit_h_14", "regnet_y_128gf"}  # minutes each with Torch-Pruning on this machine's memory


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _model(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    import torchvision

    size = 299 if name == "inception_v3" else 224
    kw = {"aux_logits": False, "init_weights": False} if name in ("inception_v3", "googlenet") else {}
    return torchvision.models.get_model(name, weights=None, **kw).eval(), torch.randn(1, 3, size, size)


def bench(name: str, repeats: int, tp) -> tuple[float, float | None]:
    import otograph

    model, x = _model(name)
    ours, theirs = [], []
    otograph.search_space(model, x)  # warm up both (imports, caches)
    if tp is not None:
        try:
            tp.DependencyGraph().build_dependency(model, example_inputs=x)
        except Exception as e:  # noqa: BLE001 - the peer fails on some models: say so, time ours
            print(f"{name}: Torch-Pruning failed: {type(e).__name__}: {e}", file=sys.stderr)
            tp = None
    for _ in range(repeats):
        ours.append(timed(lambda: otograph.search_space(model, x)))
        if tp is not None:
            theirs.append(timed(lambda: tp.DependencyGraph().build_dependency(model, example_inputs=x)))
    return statistics.median(ours), statistics.median(theirs) if theirs else None


PHASES = ("fx trace", "shapes+FLOPs", "graph", "rules", "groups+costs")


def phases(name: str, repeats: int) -> dict[str, float]:
    """Median seconds of each step of ``otograph.search_space`` (fx frontend) on one model."""
    from otograph.analysis.engine import Analysis
    from otograph.analysis.groups import build_space
    from otograph.graph import to_networkx
    from otograph.tracing.frontend import trace
    from otograph.tracing.fx import fx_graph

    model, x = _model(name)

    def once() -> dict[str, float]:
        t = {"fx trace": timed(lambda: fx_graph(model, (x,), {}))}
        box: dict = {}
        t["shapes+FLOPs"] = timed(lambda: box.update(tr=trace(model, (x,), frontend="fx"))) - t["fx trace"]
        t["graph"] = timed(lambda: box.update(g=to_networkx(box["tr"])))

        def rules():
            an = Analysis(box["tr"], None, box["g"], False).run()
            coarse = an.collapsed()
            box["an"] = Analysis(box["tr"], None, box["g"], False, coarse=coarse).run() if coarse else an

        t["rules"] = timed(rules)
        t["groups+costs"] = timed(lambda: build_space(box["an"]))
        return t

    once()
    runs = [once() for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in PHASES}


def phase_table(rows: list[tuple[str, dict[str, float], float | None]]) -> str:
    lines = ["| model | " + " | ".join(f"{p} s" for p in PHASES) + " | sum s | Torch-Pruning s |",
             "|---|" + "---:|" * (len(PHASES) + 2)]
    for name, t, tp_s in rows:
        lines.append(f"| {name} | " + " | ".join(f"{t[p]:.3f}" for p in PHASES) +
                     f" | {sum(t.values()):.3f} | {'–' if tp_s is None else f'{tp_s:.3f}'} |")
    return "\n".join(lines)


def table(rows: list[tuple[str, float, float | None]]) -> str:
    lines = ["| model | otograph s | Torch-Pruning s | ratio |", "|---|---:|---:|---:|"]
    for name, a, b in rows:
        lines.append(f"| {name} | {a:.3f} | {'fails' if b is None else f'{b:.3f}'} | {'' if b is None else f'{a / b:.2f}'} |")
    return "\n".join(lines)


def summary(rows) -> str:
    ratios = [a / b for _, a, b in rows if b]
    slow = sorted(rows, key=lambda r: -r[1])[:5]
    out = [f"models: {len(rows)}; otograph over 1 s: {sum(1 for r in rows if r[1] > 1.0)}",
           "slowest (otograph): " + ", ".join(f"{n} {a:.2f} s" for n, a, _ in slow)]
    if ratios:
        out.insert(0, f"median time ratio otograph / Torch-Pruning: {statistics.median(ratios):.2f} "
                      f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
    return "\n".join(out)


def main(argv=None) -> int:
    import torchvision

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="three small models, one repeat")
    ap.add_argument("--out", default=None, help="markdown file (default docs/search_space_speed.md for a full run)")
    ap.add_argument("--phases", action="store_true", help="split otograph's time into its steps (prints a table)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        import torch_pruning as tp
    except ImportError:
        tp = None
        print("torch_pruning is not installed (pip install 'otograph[bench]'): timing otograph alone",
              file=sys.stderr)
    names = QUICK if a.quick else a.models or [n for n in torchvision.models.list_models(module=torchvision.models)
                                               if n not in SKIP]
    repeats = 1 if a.quick else a.repeats
    if a.phases:
        prows = [(n, phases(n, repeats), bench(n, repeats, tp)[1]) for n in names]
        print(phase_table(prows))
        return 0
    rows = []
    for name in names:
        ours, theirs = bench(name, repeats, tp)
        rows.append((name, ours, theirs))
        print(table([rows[-1]]).splitlines()[-1], flush=True)
        gc.collect()
    text = table(rows) + "\n\n" + summary(rows)
    print("\n" + summary(rows))
    out = a.out or (None if (a.models or a.quick) else "docs/search_space_speed.md")
    if out:
        Path(out).write_text(
            "# Building the search space: otograph vs Torch-Pruning\n\nGenerated by `python "
            "tools/bench_search_space.py` (torch " + torch.__version__ + ", one torch thread, median of "
            f"{repeats} runs per model, interleaved). otograph: `otograph.search_space(model, x)` (trace, "
            "shapes and FLOPs in one pass, the analysis, the groups); Torch-Pruning 1.6.1: "
            "`DependencyGraph().build_dependency(model, example_inputs=x)`. Input 1×3×224×224 "
            "(299 for inception_v3).\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
