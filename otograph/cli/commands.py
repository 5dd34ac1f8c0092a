"""The subcommands: each reads its parsed flags, calls the library or the prune job, and prints."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import otograph
from hesso import Target
from otograph.cli import job
from otograph.cli.options import DEFAULT_TARGET, OptionError, PruneOptions
from otograph.cli.record import RunRecord
from otograph.cli.specs import (
    LoadedModel,
    SpecError,
    frontend_for,
    load_model,
    parse_input_shape,
    resolve_leaves,
)

__all__ = ["trace", "viz", "prune", "verify", "report", "budget", "prune_options"]

log = logging.getLogger(__name__)


def say(msg: str) -> None:
    """Progress for the user: stderr, so stdout stays clean for tables and JSON."""
    print(msg, file=sys.stderr, flush=True)


def _space(loaded: LoadedModel, args: argparse.Namespace) -> otograph.SearchSpace:
    leaves = resolve_leaves(loaded.model, args.leaf)
    return otograph.search_space(loaded.model, loaded.example_inputs, leaf_modules=leaves,
                                 frontend=frontend_for(loaded, args.frontend))


def trace(args: argparse.Namespace) -> int:
    from otograph.report.tables import space_json, space_table

    loaded = load_model(args.model, parse_input_shape(args.input_shape))
    space = _space(loaded, args)
    if args.json:
        print(json.dumps({"model": loaded.spec, "class": type(loaded.model).__name__,
                          "input_shape": list(loaded.input_shape or []), **space_json(space)}, indent=1))
        return 0
    print(f"{loaded.spec} ({type(loaded.model).__name__}), input {loaded.input_shape}")
    print(space_table(space, args.limit))
    return 0


def viz(args: argparse.Namespace) -> int:
    from otograph.drawing import render

    removed, spec = None, args.model
    if Path(spec).is_dir() and (Path(spec) / "run.json").exists():  # a prune run: the model, its removed units
        run = RunRecord.load(spec)
        spec = run.model.spec
        if args.input_shape is None and run.model.input_shape:
            args.input_shape = ",".join(str(s) for s in run.model.input_shape)
        args.leaf = args.leaf or list(run.options.leaf_modules)
        removed = json.loads((Path(args.model) / "removed_units.json").read_text())
    if args.removed:
        removed = json.loads(Path(args.removed).read_text())
    loaded = load_model(spec, parse_input_shape(args.input_shape))
    title = f"{loaded.spec} ({type(loaded.model).__name__})"
    out = render(_space(loaded, args), args.output, removed=removed, depth=args.depth, title=title)
    say(out.message or f"wrote {out.path}")
    return 0


def budget(args: argparse.Namespace) -> Target:
    """The one ``hesso.Target`` of ``--target-flops``/``--target-params``/``--sparsity`` (default: 65 % of FLOPs)."""
    try:
        return Target.from_options(units=args.sparsity, flops=args.target_flops,
                                   params=args.target_params) or DEFAULT_TARGET
    except ValueError as e:
        raise SpecError(str(e), hint="give a fraction between 0 and 1, e.g. --target-flops 0.5") from e


def prune_options(args: argparse.Namespace) -> PruneOptions:
    """The prune job's options from the parsed flags."""
    return PruneOptions(model=args.model, data=args.data, out=args.out, force=args.force,
                        input_shape=parse_input_shape(args.input_shape), target=budget(args), epochs=args.epochs,
                        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                        weight_decay=args.weight_decay, periods=args.periods, cric=args.cric,
                        baseline=not args.no_baseline, seed=args.seed, leaf_modules=tuple(args.leaf),
                        progress=not args.quiet, threads=args.threads, frontend=args.frontend)


def prune(args: argparse.Namespace) -> int:
    from otograph.report.markdown import summary_table

    o = prune_options(args)
    run = job.prune(o, say=say)
    ex = run.exactness
    print(f"\n{summary_table(run.before, run.after)}\n")
    print(f"exactness: max |Δ| {ex.max_abs:.3g} (float32), {ex.max_abs_f64:.3g} (float64); "
          f"wall time {run.wall_seconds:.1f} s")
    print(f"wrote {o.out}/: report.md, model.pt2, model.py, state_dict.pt, search_space.svg, "
          f"{run.files.training_chart}, run.json")
    return 0


def verify(args: argparse.Namespace) -> int:
    import math

    if args.batch < 1:
        raise OptionError(f"--batch must be at least 1, got {args.batch}: a batch of {args.batch} compares nothing")
    shape = parse_input_shape(args.input_shape)
    ref, cmp_ = load_model(args.reference, shape), load_model(args.compact, shape)
    v = _compare(ref, cmp_, args.batch, args.seed)
    finite = math.isfinite(v.max_abs) and math.isfinite(v.max_ref)
    ok = finite and v.max_rel <= args.tol
    print(f"reference {args.reference}: {v.params_before:,} params, {v.flops_before:,} FLOPs")
    print(f"compact   {args.compact}: {v.params_after:,} params, {v.flops_after:,} FLOPs")
    verdict = "equal" if ok else "DIFFERENT" if finite else "DIFFERENT: an output is NaN or inf"
    print(f"max |Δ| = {v.max_abs:.3g}, relative {v.max_rel:.3g} (tolerance {args.tol:g}): {verdict}")
    return 0 if ok else 1


def _compare(ref: LoadedModel, cmp_: LoadedModel, batch: int, seed: int):
    """``otograph.verify`` on a random batch of ``batch`` (the example's batch size if a model is static)."""
    import torch

    from otograph.tracing.values import batch_like

    torch.manual_seed(seed)
    x, kw = batch_like(ref.example_inputs, batch)
    try:
        return otograph.verify(ref.model, cmp_.model, x if not kw else kw)
    except Exception as e:  # noqa: BLE001 - e.g. a static batch size in an exported model
        x, kw = batch_like(ref.example_inputs, ref.input_shape[0] if ref.input_shape else 1)
        log.info("retrying with the example batch size: %s", e)
        return otograph.verify(ref.model, cmp_.model, x if not kw else kw)


def report(args: argparse.Namespace) -> int:
    from otograph.cli.report_md import render_report

    run = RunRecord.load(args.dir)
    print(run.to_json() if args.json else render_report(run))
    return 0
