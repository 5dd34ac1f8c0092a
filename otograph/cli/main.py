"""``otograph``: inspect a model's search space, draw it, prune a model, verify and report.

    otograph trace torchvision:resnet50              # groups, units, costs, opaque ops
    otograph viz torchvision:resnet50 -o r50.svg     # the search space as a picture
    otograph prune                                   # the built-in run: SmallResNet on digits
    otograph prune torchvision:resnet18?num_classes=10 --data imagefolder:~/pics --input-shape 1,3,64,64 --out runs/r18
    otograph verify runs/default/reference.pt2 runs/default/model.pt2
    otograph report runs/default

Thin layer over the library: every subcommand parses flags, calls :mod:`otograph.cli.specs`,
:mod:`otograph.cli.job`, :mod:`otograph.drawing` or :mod:`otograph.report`, and turns otograph's
errors into one readable line and exit status 2 (130 on Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

log = logging.getLogger("otograph.cli")


def _err(msg: str) -> None:
    print(f"otograph: error: {msg}", file=sys.stderr)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", metavar="1,3,224,224", help="example input shape (default: from the model spec)")
    p.add_argument("--leaf", action="append", default=[], metavar="MODULE",
                   help="keep this module (qualified name or class name) as one call when tracing; repeatable")
    p.add_argument("--frontend", choices=("fx", "export", "auto"), default=None,
                   help="tracer: torch.fx (default), torch.export (default for .pt2 files), or fx then export")


def build_parser() -> argparse.ArgumentParser:
    from otograph import __version__

    ap = argparse.ArgumentParser(prog="otograph", description="Automatic, exact structured pruning for PyTorch.",
                                 epilog="MODEL: default | torchvision:NAME[?k=v&...] | timm:NAME | "
                                        "module.path:factory | FILE.pt2 | a folder written by `otograph prune`.")
    ap.add_argument("--version", action="version", version=f"otograph {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("trace", help="print the search space: groups, units, costs, opaque ops")
    p.add_argument("model", nargs="?", default="default")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=None, help="show at most this many groups")

    p = sub.add_parser("viz", help="draw the search space (svg, pdf, png or dot)")
    p.add_argument("model", nargs="?", default="default")
    p.add_argument("-o", "--output", required=True, metavar="FILE.svg")
    p.add_argument("--depth", type=int, default=None,
                   help="collapse modules deeper than this into one box (default: as deep as stays readable)")
    p.add_argument("--removed", metavar="UNITS.json", help="JSON {group: [units]} of removed units to show")
    _common(p)

    p = sub.add_parser("prune", help="train with HESSO, compress, verify and write a report")
    p.add_argument("model", nargs="?", default="default")
    p.add_argument("--data", default="digits", help="digits | imagefolder:PATH | module.path:factory")
    t = p.add_mutually_exclusive_group()
    t.add_argument("--target-flops", type=float, metavar="FRAC",
                   help="FLOPs reduction budget, e.g. 0.5 (default 0.65)")
    t.add_argument("--target-params", type=float, metavar="FRAC", help="parameter reduction budget")
    t.add_argument("--sparsity", type=float, metavar="FRAC", help="share of all units to remove")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 0.05 for sgd, 1e-3 for adam/adamw)")
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--periods", type=int, default=4, help="pruning periods")
    p.add_argument("--cric", action="store_true", help="test each period's choice first (HESSO-CRIC)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip training the dense model with the same recipe (the 'before' accuracy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/default", help="output folder (default runs/default)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: 1 for the built-in model, else torch's default)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _common(p)

    p = sub.add_parser("verify", help="compare a compact model with its reference on random inputs")
    p.add_argument("reference")
    p.add_argument("compact")
    p.add_argument("--batch", type=int, default=8, help="batch size of the random inputs")
    p.add_argument("--tol", type=float, default=1e-4, help="largest accepted relative difference (float32)")
    p.add_argument("--seed", type=int, default=0)
    _common(p)

    p = sub.add_parser("report", help="print the report of a prune run folder")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true", help="print run.json instead")
    return ap


# ------------------------------------------------------------------------------------ helpers


def _load(spec: str, args) -> tuple:
    """(LoadedModel, leaf modules resolved to types or names)."""
    from otograph.cli.specs import load_model, parse_input_shape

    loaded = load_model(spec, parse_input_shape(args.input_shape))
    return loaded, _leaves(loaded.model, args.leaf)


def _leaves(model, names: list[str]) -> tuple:
    from otograph.cli.specs import SpecError

    by_class = {type(m).__name__: type(m) for m in model.modules()}
    paths = {n for n, _ in model.named_modules()}
    out = []
    for n in names:
        if n in by_class:
            out.append(by_class[n])
        elif n in paths:
            out.append(n)
        else:
            raise SpecError(f"--leaf {n!r} is neither a submodule path nor a module class of this model")
    return tuple(out)


def _frontend(loaded, frontend: str | None) -> str:
    return frontend or ("export" if loaded.kind == "pt2" else "fx")


def _space(loaded, leaves, frontend: str | None = None):
    import otograph

    return otograph.search_space(loaded.model, loaded.example_inputs, leaf_modules=leaves,
                                 frontend=_frontend(loaded, frontend))


def _run_folder(spec: str) -> Path | None:
    path = Path(spec)
    return path if path.is_dir() and (path / "run.json").exists() else None


# ----------------------------------------------------------------------------------- commands


def cmd_trace(args) -> int:
    from otograph.report.tables import space_json, space_table

    loaded, leaves = _load(args.model, args)
    space = _space(loaded, leaves, args.frontend)
    if args.json:
        print(json.dumps({"model": loaded.spec, "class": type(loaded.model).__name__,
                          "input_shape": list(loaded.input_shape or []), **space_json(space)}, indent=1))
        return 0
    print(f"{loaded.spec} ({type(loaded.model).__name__}), input {loaded.input_shape}")
    print(space_table(space, args.limit))
    return 0


def cmd_viz(args) -> int:
    from otograph.drawing import render

    removed = None
    spec = args.model
    folder = _run_folder(spec)
    if folder is not None:  # a prune run: draw the original model with its removed units
        from otograph.cli.specs import run_info

        info = run_info(folder)
        spec = info["model"]["spec"]
        if args.input_shape is None and info["model"].get("input_shape"):
            args.input_shape = ",".join(str(s) for s in info["model"]["input_shape"])
        args.leaf = args.leaf or list(info.get("options", {}).get("leaf_modules") or [])
        removed = json.loads((folder / "removed_units.json").read_text())
    if args.removed:
        removed = json.loads(Path(args.removed).read_text())
    loaded, leaves = _load(spec, args)
    space = _space(loaded, leaves, args.frontend)
    title = f"{loaded.spec} ({type(loaded.model).__name__})"
    out = render(space, args.output, removed=removed, depth=args.depth, title=title)
    if out.message:
        _say(out.message)
    else:
        _say(f"wrote {out.path}")
    return 0


def cmd_prune(args) -> int:
    from otograph.cli.job import PruneOptions, prune
    from otograph.report.markdown import summary_table
    from otograph.cli.specs import parse_input_shape

    o = PruneOptions(model=args.model, data=args.data, out=args.out, force=args.force,
                     input_shape=parse_input_shape(args.input_shape), target_flops=args.target_flops,
                     target_params=args.target_params, sparsity=args.sparsity, epochs=args.epochs,
                     batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                     weight_decay=args.weight_decay, periods=args.periods, cric=args.cric,
                     baseline=not args.no_baseline, seed=args.seed, leaf_modules=tuple(args.leaf),
                     progress=not args.quiet, threads=args.threads,
                     frontend=args.frontend)
    if Path(o.out).exists() and not o.force:  # fail before any work
        from otograph.fileio import OutputExists

        raise OutputExists(f"output folder {o.out!r} already exists; choose another --out or add --force "
                           f"to replace it")
    if o.leaf_modules:
        from otograph.cli.specs import load_model

        o.leaf_modules = _leaves(load_model(o.model, o.input_shape).model, list(o.leaf_modules))
    run = prune(o, say=_say)
    print(f"\n{summary_table(run)}\n")
    ex = run["exactness"]
    print(f"exactness: max |Δ| {ex['max_abs']:.3g} (float32), {ex['max_abs_f64']:.3g} (float64); "
          f"wall time {run['wall_seconds']:.1f} s")
    print(f"wrote {o.out}/: report.md, model.pt2, model.py, state_dict.pt, search_space.svg, "
          f"{run['files'].get('training_chart')}, run.json")
    return 0


def cmd_verify(args) -> int:
    import torch

    import otograph
    from otograph.cli.specs import load_model, parse_input_shape
    from otograph.tracing.values import batch_like

    shape = parse_input_shape(args.input_shape)
    ref = load_model(args.reference, shape)
    cmp_ = load_model(args.compact, shape)
    torch.manual_seed(args.seed)
    x, kw = batch_like(ref.example_inputs, args.batch)
    try:
        v = otograph.verify(ref.model, cmp_.model, x if not kw else kw)
    except Exception as e:  # noqa: BLE001 - e.g. a static batch size in an exported model
        x, kw = batch_like(ref.example_inputs, ref.input_shape[0] if ref.input_shape else 1)
        log.info("retrying with the example batch size: %s", e)
        v = otograph.verify(ref.model, cmp_.model, x if not kw else kw)
    ok = v.max_rel <= args.tol
    print(f"reference {args.reference}: {v.params_before:,} params, {v.flops_before:,} FLOPs")
    print(f"compact   {args.compact}: {v.params_after:,} params, {v.flops_after:,} FLOPs")
    print(f"max |Δ| = {v.max_abs:.3g}, relative {v.max_rel:.3g} (tolerance {args.tol:g}): "
          f"{'equal' if ok else 'DIFFERENT'}")
    return 0 if ok else 1


def cmd_report(args) -> int:
    from otograph.report.markdown import render_report
    from otograph.cli.specs import run_info

    run = run_info(args.dir)
    print(json.dumps(run, indent=1) if args.json else render_report(run))
    return 0


def main(argv: list[str] | None = None) -> int:
    from otograph.errors import OtographError, TraceError

    ap = build_parser()
    args = ap.parse_args(argv)
    import os

    if os.getcwd() not in sys.path:  # like `python -m`: module.path:factory specs resolve from here
        sys.path.insert(0, os.getcwd())
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    if args.command is None:
        ap.print_help()
        return 2
    handler = {"trace": cmd_trace, "viz": cmd_viz, "prune": cmd_prune, "verify": cmd_verify,
               "report": cmd_report}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        _err("interrupted; nothing half-written was left behind")
        return 130
    except TraceError as e:
        import re

        where = re.search(r"inside module '([^']+)'", str(e))
        hint = ""
        if where and where.group(1) != "<root>":
            hint = f"\nOn the command line: add --leaf {where.group(1)} (or its class name) to keep that module whole"
        if getattr(args, "frontend", None) != "export" and "torch.export" not in str(e):
            hint += (", or try --frontend export." if hint else "\nOn the command line: try --frontend export.")
        _err(f"{e}{hint}")
        return 2
    except OtographError as e:
        _err(str(e))
        return 2
    except (ValueError, FileNotFoundError) as e:
        _err(str(e))
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
