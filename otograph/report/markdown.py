"""``report.md`` of a prune run, rendered from its ``run.json`` (plain data, so ``otograph report`` can
re-render it without the model).

Example:
    >>> run = {"model": {"spec": "default", "class": "SmallResNet"}, "data": {"spec": "digits"},
    ...        "before": {"params": 100, "flops": 1000, "accuracy": 98.0, "latency_ms": {"1": 2.0}},
    ...        "after": {"params": 40, "flops": 400, "accuracy": 97.5, "latency_ms": {"1": 1.0}}}
    >>> print(summary_table(run))
    |  | before | after | change |
    |---|---:|---:|---:|
    | parameters | 100 | 40 | −60.0% |
    | FLOPs per sample | 1.00 K | 400 | −60.0% |
    | CPU latency, batch 1 | 2.00 ms | 1.00 ms | 2.00× faster |
    | validation accuracy | 98.00% | 97.50% | −0.50 points |
"""

from __future__ import annotations

__all__ = ["summary_table", "render_report", "si"]


def si(x: float | None) -> str:
    """``1234567 → '1.23 M'``."""
    if x is None:
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}"


def _pct(before, after) -> str:
    if not before or after is None:
        return ""
    return f"{(after - before) / before:+.1%}".replace("-", "−")


def summary_table(run: dict) -> str:
    """The before/after table: parameters, FLOPs, latency at each measured batch size, accuracy."""
    b, a = run.get("before", {}), run.get("after", {})
    rows = [("parameters", f"{b.get('params', 0):,}", f"{a.get('params', 0):,}", _pct(b.get("params"), a.get("params"))),
            ("FLOPs per sample", si(b.get("flops")), si(a.get("flops")), _pct(b.get("flops"), a.get("flops")))]
    lat_b, lat_a = b.get("latency_ms", {}), a.get("latency_ms", {})
    for bs in sorted(set(lat_b) | set(lat_a), key=int):
        x, y = lat_b.get(bs), lat_a.get(bs)
        change = f"{x / y:.2f}× faster" if x and y else ""
        rows.append((f"CPU latency, batch {bs}", f"{x:.2f} ms" if x else "n/a", f"{y:.2f} ms" if y else "n/a",
                     change))
    if "accuracy" in a:
        x, y = b.get("accuracy"), a.get("accuracy")
        change = f"{y - x:+.2f} points".replace("-", "−") if x is not None and y is not None else ""
        rows.append(("validation accuracy", f"{x:.2f}%" if x is not None else "n/a",
                     f"{y:.2f}%" if y is not None else "n/a", change))
    lines = ["|  | before | after | change |", "|---|---:|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
    return "\n".join(lines)


def _groups_table(run: dict, limit: int = 25) -> str:
    groups = run.get("groups", [])
    if not groups:
        return ""
    lines = ["| group | units kept / total | state |", "|---|---:|---|"]
    shown = sorted(groups, key=lambda g: (not g["prunable"], g["kept"] / max(1, g["units"])))[:limit]
    for g in shown:
        state = "prunable" if g["prunable"] else f"unprunable: {g['reason']}"
        lines.append(f"| `{g['id']}` | {g['kept']} / {g['units']} | {state} |")
    if len(groups) > limit:
        lines.append(f"| … {len(groups) - limit} more (see run.json) | | |")
    return "\n".join(lines)


def render_report(run: dict) -> str:
    """The whole ``report.md``."""
    m, d, t = run.get("model", {}), run.get("data", {}), run.get("training", {})
    ex = run.get("exactness", {})
    target = t.get("target") or {}
    target_txt = {"flops": "FLOPs reduction", "params": "parameter reduction",
                  "groups": "group sparsity"}.get(target.get("kind"), "target")
    out = [f"# otograph prune: `{m.get('spec', '?')}` on `{d.get('spec', '?')}`", ""]
    out.append(f"Model `{m.get('class', '?')}` (input {tuple(m.get('input_shape') or ())}); data `{d.get('spec')}` "
               f"({d.get('train_size', '?')} training, {d.get('val_size', '?')} validation samples). "
               f"HESSO{' with CRIC' if t.get('cric') else ''} on {t.get('optimizer', '?')} (lr {t.get('lr')}), "
               f"{t.get('epochs')} epochs = {t.get('steps')} steps; budget: {target.get('value', 0):.0%} "
               f"{target_txt}.")
    out += ["", summary_table(run), ""]
    base = t.get("baseline")
    out.append("*before*: the original architecture"
               + (" trained densely with the same recipe (same seed, optimizer, epochs)" if base == "dense"
                  else " (accuracy of the trained model before compression)" if base == "trained" else "")
               + "; *after*: the compact model written to `model.pt2`. FLOPs by `torch.utils.flop_counter` "
               f"for one sample; latency is the median wall time of a forward pass on this machine's CPU "
               f"({run.get('threads', '?')} torch thread(s)).")
    out += ["", "## Exactness", ""]
    if ex:
        out.append(f"The compact model against the trained full model (its removed units are exactly zero) on "
                   f"{ex.get('samples', '?')} validation inputs: max |Δ| = {ex.get('max_abs', 0):.3g} in float32 "
                   f"(relative {ex.get('max_rel', 0):.3g}), {ex.get('max_abs_f64', float('nan')):.3g} in float64. "
                   f"Predictions agree on {ex.get('same_argmax', 0):.2%} of the inputs.")
    sp = run.get("space", {})
    out += ["", "## Search space", "",
            f"{sp.get('groups', '?')} groups ({sp.get('prunable', '?')} prunable, {sp.get('units', '?')} units); "
            f"{sp.get('units_removed', '?')} units removed. Opaque ops: {', '.join(sp.get('opaque') or []) or 'none'}.",
            "", "![search space](search_space.svg)", "", _groups_table(run), ""]
    charts = run.get("files", {}).get("training_chart")
    if charts:
        out += ["## Training", "", f"![training]({charts})", "",
                "Loss and validation accuracy of the HESSO run (and of the dense baseline, dashed), and the share "
                "of units and FLOPs removed; shaded: pruning periods.", ""]
    out += ["## Files", "",
            "- `model.pt2` — the compact model: `torch.export.load('model.pt2').module()` (plain torch)",
            "- `model.py` + `state_dict.pt` — the same as Python code: `from model import load; net = load()`",
            "- `reference.pt2` — the trained full-size model, for `otograph verify reference.pt2 model.pt2`"
            if run.get("files", {}).get("reference") else "",
            "- `run.json` — every number above; `removed_units.json` — the units removed per group",
            "", f"Wall time {run.get('wall_seconds', 0):.1f} s (training {t.get('seconds', 0):.1f} s"
            + (f", dense baseline {t.get('baseline_seconds', 0):.1f} s" if base == "dense" else "") + ").", ""]
    return "\n".join(line for line in out if line is not None)
