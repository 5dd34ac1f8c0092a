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
from otograph.cli.checks import traced_space
from otograph.cli.options import DEFAULT_TARGET, OptionError, PruneOptions, at_least
from otograph.cli.record import RunRecord
from otograph.cli.specs import (
    LoadedModel,
    SpecError,
    load_model,
    parse_input_shape,
)

__all__ = ["trace", "viz", "prune", "verify", "report", "budget", "prune_options"]

log = logging.getLogger(__name__)


def say(msg: str) -> None:
    """Progress for the user: stderr, so stdout stays clean for tables and JSON."""
    print(msg, file=sys.stderr, flush=True)


def _space(loaded: LoadedModel, args: argparse.Namespace) -> otograph.SearchSpace:
    return traced_space(loaded, args.leaf, args.frontend, say)


def trace(args: argparse.Namespace) -> int:
    from otograph.report.tables import space_json, space_table

    at_least("--limit", args.limit, 0)
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
    from otograph.drawing import FORMATS, render

    at_least("--depth", args.depth, 1)
    if Path(args.output).suffix.lstrip(".").lower() not in FORMATS:
        raise OptionError(f"-o {args.output}: unknown picture format; name a .svg, .pdf, .png or .dot file")
    removed, source, spec = None, None, args.model
    if Path(spec).is_dir() and (Path(spec) / "run.json").exists():  # a prune run: the model, its removed units
        run = RunRecord.load(spec)
        spec = run.model.spec
        if args.input_shape is None and run.model.input_shape:
            args.input_shape = ",".join(str(s) for s in run.model.input_shape)
        args.leaf = args.leaf or list(run.options.leaf_modules)
        args.frontend = args.frontend or run.space.frontend or run.options.frontend
        source = Path(args.model) / "removed_units.json"
    if args.removed:
        source = Path(args.removed)
    if source is not None:
        removed = read_units(source)
    loaded = load_model(spec, parse_input_shape(args.input_shape))
    space = _space(loaded, args)
    if removed is not None:
        check_units(removed, space, source)
    title = f"{loaded.spec} ({type(loaded.model).__name__})"
    out = render(space, args.output, removed=removed, depth=args.depth, title=title)
    say(out.message or f"wrote {out.path}")
    return 0


def read_units(path: Path) -> dict[str, list[int]]:
    """A ``{group: [unit, …]}`` JSON file (``--removed``, ``removed_units.json``), its form checked."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpecError(f"{path} is not valid JSON: {e}", hint='write {"group id": [unit, ...], ...}') from None
    if not (isinstance(data, dict) and all(isinstance(v, list) and all(type(u) is int for u in v)
                                           for v in data.values())):
        raise SpecError(f"{path} must map group ids to lists of unit numbers", hint='e.g. {"layer1.conv1": [0, 3]}')
    return data


def check_units(units: dict[str, list[int]], space: otograph.SearchSpace, source: Path) -> None:
    """Refuse units of groups the space does not have, or beyond a group's size."""
    import difflib

    groups = {g.id: g for g in space.groups}
    for gid, us in units.items():
        if gid not in groups:
            close = difflib.get_close_matches(gid, groups, n=1)
            more = f" and {len(groups) - 8} more (otograph trace lists them)" if len(groups) > 8 else ""
            hint = f"the closest is {close[0]!r}" if close else f"its groups are {', '.join(list(groups)[:8])}{more}"
            raise SpecError(f"{source} names group {gid!r}, which this model does not have", hint=hint)
        bad = [u for u in us if not 0 <= u < groups[gid].num_units]
        if bad:
            raise SpecError(f"{source}: group {gid!r} has {groups[gid].num_units} units, numbered from 0; "
                            f"it lists {', '.join(map(str, bad[:5]))}")


_BUDGET_FLAGS = (("--sparsity", "sparsity"), ("--target-flops", "target_flops"), ("--target-params", "target_params"))


def budget(args: argparse.Namespace) -> Target:
    """The one ``hesso.Target`` of ``--target-flops``/``--target-params``/``--sparsity`` (default: half the FLOPs)."""
    for flag, name in _BUDGET_FLAGS:
        value = getattr(args, name)
        if value is not None and not 0.0 < value < 1.0:
            raise OptionError(f"{flag} must be a fraction in (0, 1), both ends excluded, got {value:g}",
                              hint=f"e.g. {flag} 0.5 removes half")
    return Target.from_options(units=args.sparsity, flops=args.target_flops,
                               params=args.target_params) or DEFAULT_TARGET


def prune_options(args: argparse.Namespace) -> PruneOptions:
    """The prune job's options from the parsed flags (values that cannot work are refused)."""
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--periods", args.periods),
                        ("--threads", args.threads), ("--round-to", args.round_to)):
        at_least(flag, value, 1)
    at_least("--finetune-epochs", args.finetune_epochs, 0)
    at_least("--lr", args.lr, 0, above=True)
    at_least("--weight-decay", args.weight_decay, 0)
    at_least("--distill", args.distill, 0, above=True)
    return PruneOptions(model=args.model, data=args.data, out=args.out, force=args.force,
                        input_shape=parse_input_shape(args.input_shape), target=budget(args), epochs=args.epochs,
                        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                        weight_decay=args.weight_decay, periods=args.periods, cric=args.cric,
                        baseline=not args.no_baseline, seed=args.seed, leaf_modules=tuple(args.leaf),
                        progress=not args.quiet, threads=args.threads, frontend=args.frontend,
                        finetune_epochs=args.finetune_epochs, round_to=args.round_to, weights=args.weights,
                        distill=args.distill)


def prune(args: argparse.Namespace) -> int:
    from otograph.cli.report_md import target_table
    from otograph.report.markdown import summary_table

    o = prune_options(args)
    run = job.prune(o, say=say)
    ex = run.exactness
    print(f"\n{summary_table(run.before, run.after)}\n\n{target_table(run)}\n")
    print(f"exactness: max |Δ| {ex.max_abs:.3g} (float32), {ex.max_abs_f64:.3g} (float64); "
          f"wall time {run.wall_seconds:.1f} s")
    f = run.files
    names = ["report.md", *(["model.pt2"] if f.pt2 else []), "model.py", "state_dict.pt",
             *([f.reference] if f.reference else []), *([f.search_space] if f.search_space else []),
             *([f.training_chart] if f.training_chart else []), "run.json", "removed_units.json"]
    print(f"wrote {o.out}/: {', '.join(names)}")
    return 0


def verify(args: argparse.Namespace) -> int:
    import math

    if args.batch < 1:
        raise OptionError(f"--batch must be at least 1, got {args.batch}: a batch of {args.batch} compares nothing")
    shape = parse_input_shape(args.input_shape)
    ref, cmp_ = load_model(args.reference, shape), load_model(args.compact, shape)
    if ref.input_shape and cmp_.input_shape and ref.input_shape[1:] != cmp_.input_shape[1:]:
        raise SpecError(f"the two models take different inputs: {args.reference} {ref.input_shape[1:]}, "
                        f"{args.compact} {cmp_.input_shape[1:]} (without the batch axis), so they cannot be compared",
                        hint="compare a compact model with the reference.pt2 of its own run")
    v, batch = _compare(ref, cmp_, args.batch, args.seed)
    finite = math.isfinite(v.max_abs) and math.isfinite(v.max_ref)
    ok = finite and v.max_rel <= args.tol
    print(f"reference {args.reference}: {v.params_before:,} params, {v.flops_before:,} FLOPs per batch of {batch}")
    print(f"compact   {args.compact}: {v.params_after:,} params, {v.flops_after:,} FLOPs per batch of {batch}")
    verdict = "equal" if ok else "DIFFERENT" if finite else "DIFFERENT: an output is NaN or inf"
    static = "" if batch == args.batch else f", the batch size a model takes (not --batch {args.batch})"
    print(f"max |Δ| = {v.max_abs:.3g}, relative {v.max_rel:.3g} (tolerance {args.tol:g}) on {batch} random "
          f"inputs{static}: {verdict}")
    return 0 if ok else 1


def _compare(ref: LoadedModel, cmp_: LoadedModel, batch: int, seed: int):
    """``otograph.verify`` on a random batch of ``batch`` (the example's batch size if a model is static),
    and the batch size used."""
    import torch

    from otograph.tracing.values import batch_like

    torch.manual_seed(seed)
    x, kw = batch_like(ref.example_inputs, batch)
    try:
        return otograph.verify(ref.model, cmp_.model, x if not kw else kw), batch
    except Exception as e:  # noqa: BLE001 - e.g. a static batch size in an exported model
        log.info("retrying with the example batch size: %s", e)
    batch = ref.input_shape[0] if ref.input_shape else 1
    x, kw = batch_like(ref.example_inputs, batch)
    try:
        return otograph.verify(ref.model, cmp_.model, x if not kw else kw), batch
    except Exception as e:  # noqa: BLE001 - one of them does not take the other's inputs
        raise SpecError(f"the two models do not run on the same inputs: {type(e).__name__}: "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}",
                        hint="compare a compact model with the reference.pt2 of its own run") from e


def report(args: argparse.Namespace) -> int:
    from otograph.cli.report_md import render_report

    run = RunRecord.load(args.dir)
    print(run.to_json() if args.json else render_report(run))
    return 0
