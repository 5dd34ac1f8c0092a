"""Fuzz the analysis at scale: random models, every check, a minimal reproduction of each failure.

    python tools/fuzz.py --quick                      # ~200 small cases in well under 3 minutes (CI)
    python tools/fuzz.py --cases 10000 --seed 1       # the long run
    python tools/fuzz.py --minutes 30                 # as many cases as fit in 30 minutes
    python tools/fuzz.py --skip no_grad --skip autograd_fn   # leave out patterns with known gaps

Each case is a random model (otograph.testing.fuzz: every rule family of the built-in registry and
the patterns of issue 13) checked through both frontends: the fx and export traces, the analysis,
the model left untouched, traps unprunable, compress, exactness, parameters, buffers and gradients
in float64, and shrinking in place: exact, or refused with the model untouched (see
otograph/testing/fuzz/checks.py). A failing case is written as a standalone script
``<out>/case_<seed>_<n>.py`` and shrunk (delta debugging over its steps; a few per kind of failure);
the summary lists failures per check, coverage per rule family, op kind and pattern, and each
distinct failure with its shortest reproduction. The exit status is 1 when anything failed.
``--skip`` takes a pattern (``inplace``, ``buffer``, ``no_grad``, ``autograd_fn``, ``wrapper``,
``dtype``, ``tied``, ``trap``, ``train_mode``, ``python_control``) or a step kind (``mha``, ``conv``…).
"""

from __future__ import annotations

import argparse
import sys

from otograph.testing.fuzz import PATTERNS, VOCAB
from otograph.testing.fuzz.campaign import run


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", type=int, help="number of cases (default 200; --quick: 200)")
    ap.add_argument("--seed", type=int, default=0, help="run seed: case n has seed SEED*1000000+n (default 0)")
    ap.add_argument("--minutes", type=float, help="stop starting new cases after this many minutes")
    ap.add_argument("--quick", action="store_true", help="200 small cases (at most 4 steps), for CI")
    ap.add_argument("--size", type=int, help="at most this many steps per model (default 8; --quick: 4)")
    ap.add_argument("--skip", action="append", default=[], metavar="PATTERN",
                    help="leave out a pattern or step kind (repeat it, or separate names by commas)")
    ap.add_argument("--frontend", action="append", choices=["fx", "export"], help="only these frontends")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--out", default="fuzz_failures", help="folder for reproductions (default fuzz_failures)")
    ap.add_argument("--shrink-seconds", type=float, help="time to shrink one failure (default 90; --quick: 30)")
    ap.add_argument("--shrinks", type=int,
                    help="failures shrunk per kind (check, frontend, patterns, gist of the message); default 2, "
                         "--quick: 1")
    ap.add_argument("--timeout", type=int, default=300, help="seconds one case may take (default 300)")
    args = ap.parse_args(argv)
    args.skip = sorted({s.strip() for item in args.skip for s in item.split(",") if s.strip()})
    unknown = [s for s in args.skip if s not in PATTERNS and s not in VOCAB]
    if unknown:
        ap.error(f"unknown pattern or step kind {unknown}; patterns: {', '.join(PATTERNS)}")
    args.cases = args.cases if args.cases is not None else 200
    args.size = args.size or (4 if args.quick else 8)
    args.shrink_seconds = args.shrink_seconds or (30.0 if args.quick else 90.0)
    args.shrinks = args.shrinks if args.shrinks is not None else (1 if args.quick else 2)
    return args


def main(argv=None) -> int:
    return run(parse_args(argv))[0]


if __name__ == "__main__":
    sys.exit(main())
