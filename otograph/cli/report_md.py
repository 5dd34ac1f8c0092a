"""``report.md`` of a prune run, rendered from its :class:`~otograph.cli.record.RunRecord` (so
``otograph report`` re-renders it from ``run.json`` without the model)."""

from __future__ import annotations

from otograph.cli.record import GroupOutcome, RunRecord
from otograph.report.markdown import summary_table

__all__ = ["render_report", "target_table", "measured_reduction"]

_TRACER = {"fx": "torch.fx", "export": "torch.export"}
_TARGET_TEXT = {"flops": "FLOPs reduction", "params": "parameter reduction", "units": "group sparsity"}


def groups_table(groups: list[GroupOutcome], limit: int = 25) -> str:
    """Groups as a table, prunable ones first, most pruned first."""
    if not groups:
        return ""
    lines = ["| group | units kept / total | state |", "|---|---:|---|"]
    for g in sorted(groups, key=lambda g: (not g.prunable, g.kept / max(1, g.units)))[:limit]:
        state = "prunable" if g.prunable else f"unprunable: {g.reason}"
        lines.append(f"| `{g.id}` | {g.kept} / {g.units} | {state} |")
    if len(groups) > limit:
        lines.append(f"| … {len(groups) - limit} more (see run.json) | | |")
    return "\n".join(lines)


def measured_reduction(r: RunRecord) -> float | None:
    """The reduction of the target's kind, measured: FLOPs or parameters of the compact model against
    the original, or the share of units removed."""
    b, a, kind = r.before, r.after, r.training.target.kind
    if kind == "flops":
        return 1.0 - a.flops / b.flops if b.flops else None
    if kind == "params":
        return 1.0 - a.params / b.params if b.params else None
    return r.training.hesso.get("group_sparsity")


def target_table(r: RunRecord) -> str:
    """The asked target and the measured reduction side by side."""
    t = r.training.target
    got = measured_reduction(r)
    return "\n".join(["| target | asked | measured |", "|---|---:|---:|",
                      f"| {_TARGET_TEXT.get(t.kind, t.kind)} | {t.fraction:.1%} | "
                      f"{'n/a' if got is None else f'{got:.1%}'} |"])


def _recipe(t) -> str:
    """How the run trained, in words."""
    epochs = f"{t.epochs} epochs" + (f" + {t.finetune_epochs} fine-tuning epochs" if t.finetune_epochs else "")
    extra = [f"starting from `{t.weights}`"] if t.weights else []
    if t.distill is not None:
        extra.append(f"distilled from the starting model (KL at temperature {t.distill:g} added to the cross-entropy)")
    if t.round_to > 1:
        extra.append(f"every group keeps a multiple of {t.round_to} units")
    return f"{epochs} = {t.steps} steps" + "".join(f"; {e}" for e in extra)


def _intro(r: RunRecord) -> list[str]:
    m, d, t = r.model, r.data, r.training
    return [f"# otograph prune: `{m.spec}` on `{d.spec}`", "",
            f"Model `{m.class_name}` (input {tuple(m.input_shape)}); data `{d.spec}` "
            f"({d.train_size if d.train_size is not None else '?'} training, "
            f"{d.val_size if d.val_size is not None else '?'} validation samples). "
            f"HESSO{' with CRIC' if t.cric else ''} on {t.optimizer} (lr {t.lr}), "
            f"{_recipe(t)}; budget: {t.target.fraction:.0%} "
            f"{_TARGET_TEXT.get(t.target.kind, 'target')}."]


def _table_notes(r: RunRecord) -> str:
    base = r.training.baseline
    how = {"dense": " trained densely with the same recipe (same seed, optimizer, epochs)",
           "trained": " (accuracy of the trained model before compression)",
           "start": f" as loaded from `{r.training.weights}`, before any training"}.get(base, "")
    return (f"*before*: the original architecture{how}; *after*: the compact model written to `model.pt2`. "
            f"FLOPs by `torch.utils.flop_counter` for one sample; latency is the median wall time of a forward "
            f"pass on this machine's CPU ({r.threads} torch thread(s)), in brackets the 25th–75th percentile of the "
            f"timed passes (a change within them is noise).")


def _exactness(r: RunRecord) -> str:
    ex = r.exactness
    return (f"The compact model against the trained full model (its removed units are exactly zero) on "
            f"{ex.samples} validation inputs: max |Δ| = {ex.max_abs:.3g} in float32 (relative {ex.max_rel:.3g}), "
            f"{ex.max_abs_f64:.3g} in float64. Predictions agree on {ex.same_argmax:.2%} of the inputs.")


def _files(r: RunRecord) -> list[str]:
    """The files the run wrote, each with how to use it, and only what works."""
    t, f = r.training, r.files
    lines = ["## Files", ""]
    if f.pt2:
        batch = r.model.input_shape[0] if r.model.input_shape else None
        how = ("any batch size" if f.dynamic_batch or batch is None else
               f"only batches of {batch} (the example's batch size: torch.export could not make it dynamic)")
        lines.append(f"- `model.pt2` — the compact model: `torch.export.load('model.pt2').module()` (plain torch); "
                     f"it takes {how}")
    else:
        lines.append(f"- no `model.pt2`: torch.export failed ({f.pt2_error or 'see the log'})")
    if f.standalone_py:
        lines.append("- `model.py` + `state_dict.pt` — the same as plain Python: `from model import load; net = load()`")
    else:
        lines.append("- `model.py` — the compact model's fx code, which needs the original model's module classes; "
                     "`state_dict.pt` — its tensors (`torch.load(..., weights_only=True)`)")
    if f.reference:
        lines.append("- `reference.pt2` — the trained full-size model, for `otograph verify reference.pt2 model.pt2`")
    dense = f", dense baseline {t.baseline_seconds:.1f} s" if t.baseline == "dense" else ""
    return lines + ["- `run.json` — every number above; `removed_units.json` — the units removed per group",
                    "", f"Wall time {r.wall_seconds:.1f} s (training {t.seconds:.1f} s{dense}).", ""]


def _picture(r: RunRecord) -> list[str]:
    name = r.files.search_space
    if not name:
        return []
    if name.endswith(".dot"):
        svg = name[:-4] + ".svg"
        return [f"The picture is `{name}`: graphviz's `dot` program was not installed; "
                f"`dot -Tsvg {name} -o {svg}` draws it.", ""]
    return [f"![search space]({name})", ""]


def render_report(r: RunRecord) -> str:
    """The whole ``report.md``."""
    sp = r.space
    out = [*_intro(r), "", summary_table(r.before, r.after), "", _table_notes(r), "", target_table(r), "",
           "*asked*: the budget given to HESSO; *measured*: the compact model against the original "
           "(FLOPs by `torch.utils.flop_counter`, parameters counted, or the share of units removed).",
           "", "## Exactness", "", _exactness(r),
           "", "## Search space", "",
           f"{sp.groups} groups ({sp.prunable} prunable, {sp.units} units); {sp.units_removed} units removed. "
           f"Opaque ops: {', '.join(sp.opaque) or 'none'}." + (f" Traced by {_TRACER[sp.frontend]}." if sp.frontend
                                                                 in _TRACER else ""),
           "", *_picture(r), groups_table(r.groups), ""]
    if r.files.training_chart:
        out += ["## Training", "", f"![training]({r.files.training_chart})", "",
                "Loss and validation accuracy of the HESSO run (and of the dense baseline, dashed), and the share "
                "of units and FLOPs removed; shaded: pruning periods.", ""]
    return "\n".join(out + _files(r))
