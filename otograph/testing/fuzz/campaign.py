"""A fuzzing campaign: cases in worker processes, failures written and shrunk, the summary.

``run(options)`` is what ``tools/fuzz.py`` runs (its options are the tool's command-line flags). The
worker functions live here, importable by the spawned processes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import re
import signal
import sys
import time
import warnings
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import SimpleNamespace

from otograph.testing.fuzz.checks import Failure, Outcome
from otograph.testing.fuzz.generator import generate, render
from otograph.testing.fuzz.program import RandomChooser
from otograph.testing.fuzz.runner import CaseResult, run_case, shrink, signature, write_repro
from otograph.testing.fuzz.summary import Summary

__all__ = ["run", "case_task", "shrink_task"]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("torch").setLevel(logging.CRITICAL)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - torch.fx prints the traceback of every failing call


@contextlib.contextmanager
def _alarm(seconds: int):
    def on_alarm(signum, frame):
        raise TimeoutError(f"the case took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def case_task(seed: int, size: int, skip: tuple, frontends: tuple | None, timeout: int) -> CaseResult:
    case = generate(RandomChooser(seed), seed, size=size, skip=skip)
    try:
        with _alarm(timeout):
            return run_case(case, frontends=frontends)
    except TimeoutError as e:
        return CaseResult(case, render(case), [Outcome("-", [Failure("timeout", "-", str(e))])])


def shrink_task(case, failure: Failure, seconds: float, timeout: int):
    """The shrunk case and its failure (the same check and frontend), or None."""
    try:
        with _alarm(int(seconds + timeout)):
            small = shrink(case, failure, seconds=seconds)
            again = run_case(small, frontends=(failure.frontend,)).failures
            return small, next((f for f in again if f.check == failure.check), failure)
    except TimeoutError:
        return None


def _gist(message: str) -> str:
    """A failure message without its numbers, node names and what was removed: what kind of failure it is."""
    message = re.sub(r"\(removing .*\)$", "", message)
    return re.sub(r"%\w+|'[^']*'|[\w.]*\d[\w.+-]*", "#", message)[:80]


def _note(r: CaseResult, minimised: bool) -> str:
    parts = [f"Before shrinking: {r.primary}"] if minimised else ["Not minimised."]
    others = [str(f) for f in r.failures if f is not r.primary]
    if others:
        parts.append(f"Also failing{' before shrinking' if minimised else ''}: " + "; ".join(others))
    return "\n".join(parts)


class _Failures:
    """Failing cases grouped by kind: which to shrink, and the distinct failures they shrink to."""

    def __init__(self, shrinks: int):
        self.shrinks = shrinks
        self.started: Counter = Counter()  # rough signature (check, frontend, patterns, gist) → shrinks started
        self.count: Counter = Counter()  # rough signature → failing cases
        self.first_path: dict = {}  # rough signature → the first (unminimised) repro
        self.reached: dict = defaultdict(list)  # rough signature → distinct signatures its shrinks reached
        self.distinct: dict = {}  # signature → {"path", "minimised", "steps", "count"}

    def add(self, r: CaseResult, path: Path) -> tuple | None:
        """Count a failing case; its rough signature if it should be shrunk."""
        rough = (r.primary.check, r.primary.frontend, tuple(sorted(r.program.patterns)), _gist(r.primary.message))
        self.count[rough] += 1
        self.first_path.setdefault(rough, str(path))
        if self.started[rough] < self.shrinks:
            self.started[rough] += 1
            return rough
        return None

    def shrunk(self, rough: tuple, small, failure: Failure, path: Path, minimised: bool) -> None:
        sig, steps = signature(small, failure), len(render(small).kinds)
        old = self.distinct.get(sig)
        if old is None or steps < old["steps"]:
            self.distinct[sig] = {"path": str(path), "minimised": minimised, "steps": steps,
                                  "count": old["count"] if old else 0}
        self.distinct[sig]["count"] += 1
        self.reached[rough].append(sig)

    def repros(self) -> list:
        """(signature, path, minimised, failing cases) of each distinct failure; a failure that was not
        shrunk counts with the first shrink of its kind."""
        distinct = {k: dict(v) for k, v in self.distinct.items()}
        for rough, n in self.count.items():
            unshrunk = n - len(self.reached.get(rough, []))
            if unshrunk and self.reached.get(rough):
                distinct[self.reached[rough][0]]["count"] += unshrunk
            elif unshrunk:
                distinct[rough] = {"path": self.first_path[rough], "minimised": False, "steps": 0, "count": unshrunk}
        return [(sig, d["path"], d["minimised"], d["count"]) for sig, d in distinct.items()]


class _Workers:
    """Worker processes, replaced by fresh ones after ``recycle`` tasks (each case loads new code and
    torch caches grow). Rather than ``max_tasks_per_child``, which can hang the executor: the old
    executor finishes what it has while a new one takes the new tasks."""

    def __init__(self, workers: int, recycle: int = 200):
        self.workers, self.recycle, self.submitted = workers, recycle, 0
        self.ex = self._new()
        self.retired: list[ProcessPoolExecutor] = []

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker)

    def replace(self) -> None:
        """A fresh executor (after a worker process died and broke the current one)."""
        self.retired.append(self.ex)
        self.ex = self._new()

    def submit(self, fn, *args):
        if self.submitted and self.submitted % self.recycle == 0:
            self.ex.shutdown(wait=False)  # it ends once its tasks are done
            self.retired.append(self.ex)
            self.ex = self._new()
        self.submitted += 1
        return self.ex.submit(fn, *args)

    def terminate(self) -> None:
        for ex in [*self.retired, self.ex]:
            procs = getattr(ex, "_processes", None) or {}
            for proc in list(procs.values()):  # the processes we started
                proc.terminate()

    def shutdown(self) -> None:
        for ex in [*self.retired, self.ex]:
            ex.shutdown(wait=True, cancel_futures=True)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def run(args: SimpleNamespace) -> tuple[int, Summary]:
    """Run a campaign; ``args`` has the fields of ``tools/fuzz.py``'s options. Returns (exit status, summary).

    Ctrl-C (or SIGTERM) stops it early: the workers are ended and the summary covers the cases done.
    """
    out = Path(args.out)
    frontends = tuple(args.frontend) if args.frontend else None
    summary, t0 = Summary(), time.perf_counter()
    deadline = t0 + args.minutes * 60 if args.minutes else float("inf")
    failures = _Failures(args.shrinks)
    pending: dict = {}
    started = done = 0
    print(f"fuzz: {args.cases} cases, seed {args.seed}, at most {args.size} steps, {args.workers} workers"
          f"{', skipping ' + ', '.join(args.skip) if args.skip else ''}", flush=True)
    ex = _Workers(args.workers)
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    last_report = time.perf_counter()
    try:
        while True:
            cases_in_flight = sum(1 for kind, *_ in pending.values() if kind == "case")
            while cases_in_flight < 2 * args.workers and started < args.cases and time.perf_counter() < deadline:
                seed = args.seed * 1_000_000 + started
                fut = ex.submit(case_task, seed, args.size, tuple(args.skip), frontends, args.timeout)
                pending[fut] = ("case", started)
                started += 1
                cases_in_flight += 1
            if not pending:
                break
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                kind, index, *rest = pending.pop(fut)
                if kind == "case":
                    done += 1
                    try:
                        r = fut.result()
                    except BrokenProcessPool as e:  # a worker died (a crash in torch, or out of memory)
                        ex.replace()
                        seed = args.seed * 1_000_000 + index
                        case = generate(RandomChooser(seed), seed, size=args.size, skip=tuple(args.skip))
                        r = CaseResult(case, render(case), [Outcome("-", [Failure("crash", "-", repr(e))])])
                    summary.add(r)
                    if r.failures:
                        name = f"case_{args.seed}_{index}"
                        path = write_repro(out, name, r.case, r.primary, note=_note(r, False))
                        rough = failures.add(r, path)
                        if rough is not None:
                            f2 = ex.submit(shrink_task, r.case, r.primary, args.shrink_seconds, args.timeout)
                            pending[f2] = ("shrink", index, r, rough, name)
                else:
                    r, rough, name = rest
                    try:
                        small, failure = fut.result() or (r.case, r.primary)
                    except BrokenProcessPool:
                        ex.replace()
                        small, failure = r.case, r.primary
                    path = write_repro(out, name, small, failure, note=_note(r, small is not r.case))
                    failures.shrunk(rough, small, failure, path, small is not r.case)
            if time.perf_counter() - last_report > 30:
                last_report = time.perf_counter()
                shrinking = sum(1 for kind, *_ in pending.values() if kind == "shrink")
                print(f"  {done}/{started} cases done, {summary.failing} failing, {shrinking} being shrunk, "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
    except KeyboardInterrupt:
        print(f"  interrupted: {done} cases done", flush=True)
        ex.terminate()
    finally:
        signal.signal(signal.SIGTERM, old_term)
        ex.shutdown()
    summary.repros = failures.repros()
    summary.seconds = time.perf_counter() - t0
    text = summary.table()
    print(text)
    if summary.failing or summary.invalid:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.txt").write_text(text + "\n")
    return (1 if summary.failing else 0), summary
