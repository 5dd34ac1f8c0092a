"""``otograph``: inspect a model's search space, draw it, prune a model, verify and report.

    otograph trace torchvision:resnet50              # groups, units, costs, opaque ops
    otograph viz torchvision:resnet50 -o r50.svg     # the search space as a picture
    otograph prune                                   # the built-in run: SmallResNet on digits
    otograph prune torchvision:resnet18?num_classes=10 --data imagefolder:~/pics --input-shape 1,3,64,64 --out runs/r18
    otograph verify runs/default/reference.pt2 runs/default/model.pt2
    otograph report runs/default

This module parses the flags, dispatches to :mod:`otograph.cli.commands`, and turns otograph's
errors into one readable message and exit status 2 (130 on Ctrl-C, 141 when stdout is closed, 1 with
one ``internal error`` line for a bug).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from otograph.errors import OtographError, TraceError
from otograph.tracing import DEFAULT_FRONTEND, FRONTENDS

__all__ = ["main", "build_parser"]


def _input_shape(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", metavar="1,3,224,224", help="example input shape (default: from the model spec)")


def _tracing(p: argparse.ArgumentParser) -> None:
    _input_shape(p)
    p.add_argument("--leaf", action="append", default=[], metavar="MODULE",
                   help="keep this module (qualified name or class name) as one call when tracing; repeatable")
    p.add_argument("--frontend", choices=FRONTENDS, default=None,
                   help=f"tracer: {DEFAULT_FRONTEND} by default, export for .pt2 files; auto tries fx then export")


def _temperature(text: str) -> float:
    """``--distill``'s optional T; a model spec after a bare ``--distill`` is read as T, so say where it goes."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a temperature: write the model before --distill, or "
                                         f"give T (e.g. --distill 2)") from None


def _prune_parser(p: argparse.ArgumentParser) -> None:
    from otograph.cli.options import DEFAULT_TARGET, DEFAULT_TEMPERATURE

    p.add_argument("model", nargs="?", default="default")
    p.add_argument("--data", default="digits", help="digits | imagefolder:PATH | module.path:factory")
    t = p.add_mutually_exclusive_group()
    t.add_argument("--target-flops", type=float, metavar="FRAC",
                   help=f"FLOPs reduction budget, e.g. 0.4 (default {DEFAULT_TARGET.fraction:g}): the compact "
                        f"model has at least this much fewer FLOPs")
    t.add_argument("--target-params", type=float, metavar="FRAC", help="parameter reduction budget")
    t.add_argument("--sparsity", type=float, metavar="FRAC", help="share of all units to remove")
    p.add_argument("--weights", metavar="FILE",
                   help="start from these weights: a state_dict file (torch.save(model.state_dict(), FILE)), "
                        "read with weights_only=True; 'before' is then this model's accuracy, no dense baseline")
    p.add_argument("--distill", type=_temperature, nargs="?", const=DEFAULT_TEMPERATURE, default=None, metavar="T",
                   help="add the KL divergence to a frozen copy of the starting model's logits at temperature T "
                        f"(default {DEFAULT_TEMPERATURE:g}) to the cross-entropy")
    p.add_argument("--epochs", type=int, default=10, help="epochs that hold the pruning periods (default 10)")
    p.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                   help="train N more epochs after them, the pruned units held at zero (default 0)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 0.05 for sgd, 1e-3 for adam/adamw)")
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--periods", type=int, default=4, help="pruning periods")
    p.add_argument("--cric", action="store_true", help="test each period's choice first (HESSO-CRIC)")
    p.add_argument("--round-to", type=int, default=1, metavar="N",
                   help="keep a multiple of N units (channels, features, heads) in every group, for hardware-"
                        "friendly widths; a group smaller than N stays whole (default 1)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip training the dense model with the same recipe (the 'before' accuracy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/default", help="output folder (default runs/default)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: 1 for the built-in model, else torch's default)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _tracing(p)


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
    _tracing(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=None, help="show at most this many groups")

    p = sub.add_parser("viz", help="draw the search space (svg, pdf, png or dot)")
    p.add_argument("model", nargs="?", default="default")
    p.add_argument("-o", "--output", required=True, metavar="FILE.svg")
    p.add_argument("--depth", type=int, default=None,
                   help="collapse modules deeper than this into one box (default: as deep as stays readable)")
    p.add_argument("--removed", metavar="UNITS.json", help="JSON {group: [units]} of removed units to show")
    _tracing(p)

    _prune_parser(sub.add_parser("prune", help="train with HESSO, compress, verify and write a report"))

    p = sub.add_parser("verify", help="compare a compact model with its reference on random inputs")
    p.add_argument("reference")
    p.add_argument("compact")
    p.add_argument("--batch", type=int, default=8, help="batch size of the random inputs")
    p.add_argument("--tol", type=float, default=1e-4, help="largest accepted relative difference (float32)")
    p.add_argument("--seed", type=int, default=0)
    _input_shape(p)

    p = sub.add_parser("report", help="print the report of a prune run folder")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true", help="print run.json instead")
    return ap


def _err(msg: str) -> None:
    print(f"otograph: error: {msg}", file=sys.stderr)


def trace_hint(e: TraceError) -> str:
    """What to do on the command line, from the error's fields: ``--leaf`` for the module that failed, and
    ``--frontend export`` when torch.fx failed (only the fx frontend names a module, ``<root>`` included)."""
    fixes = []
    if e.module not in (None, "<root>"):
        fixes.append(f"add --leaf {e.module} (or its class name) to keep that module whole")
    if e.module is not None:
        fixes.append("try --frontend export")
    return f"\nOn the command line: {', or '.join(fixes)}." if fixes else ""


def main(argv: list[str] | None = None) -> int:
    """Run ``otograph ARGV``; returns the exit status: 0, 1 (verify found a difference, or a bug in
    otograph), 2 (an error in the input, one line), 130 (Ctrl-C), 141 (stdout closed)."""
    verbose = False
    try:
        ap = build_parser()
        args = ap.parse_args(argv)
        verbose = args.verbose
        return _run(ap, args)
    except KeyboardInterrupt:
        _err("interrupted; nothing half-written was left behind")
        return 130
    except BrokenPipeError:  # `otograph trace --json | head -1`: the reader is gone, so is the rest
        _silence_stdout()
        return 141
    except TraceError as e:
        _err(f"{e}{trace_hint(e)}")
        return 2
    except (OtographError, ValueError, FileNotFoundError) as e:
        _err(str(e))
        return 2
    except Exception as e:  # noqa: BLE001 - a bug: one line, the traceback with -v
        if verbose:
            logging.getLogger("otograph.cli").exception("internal error")
        _err(f"internal error (a bug in otograph, please report it): {type(e).__name__}: {_first_line(e)}"
             + ("" if verbose else "; rerun with -v for the traceback"))
        return 1


def _run(ap: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from otograph.cli import commands

    if os.getcwd() not in sys.path:  # like `python -m`: module.path:factory specs resolve from here
        sys.path.insert(0, os.getcwd())
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    if not args.verbose:  # torch's own warnings (graph dumps of a failed export) bury the one-line error
        logging.getLogger("torch").setLevel(logging.ERROR)
    if args.command is None:
        ap.print_help()
        return 2
    handler = {"trace": commands.trace, "viz": commands.viz, "prune": commands.prune, "verify": commands.verify,
               "report": commands.report}[args.command]
    return handler(args)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else "(no message)"


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (captured in tests)
        pass
