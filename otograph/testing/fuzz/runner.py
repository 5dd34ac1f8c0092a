"""One case end to end: render, validate, check every frontend; shrink a failure; write its repro."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from otograph.testing.fuzz.checks import CHECKS, Failure, Outcome, check_model
from otograph.testing.fuzz.generator import Program, load, render, validate
from otograph.testing.fuzz.program import Case, Step

__all__ = ["CaseResult", "run_case", "shrink", "repro_source", "write_repro", "signature"]


@dataclass
class CaseResult:
    case: Case
    program: Program
    outcomes: list[Outcome] = field(default_factory=list)
    invalid: str | None = None  # why the generated model is unusable (a generator bug)
    seconds: float = 0.0

    @property
    def failures(self) -> list[Failure]:
        return [f for o in self.outcomes for f in o.failures]

    @property
    def primary(self) -> Failure | None:
        """The failure to shrink and reproduce: the earliest check, fx before export."""
        order = {c: i for i, c in enumerate(CHECKS)}
        return min(self.failures, key=lambda f: (order.get(f.check, -1), f.frontend), default=None)


def check_seed(case: Case) -> int:
    return case.seed % (2 ** 31)


def run_case(case: Case, *, frontends: Sequence[str] | None = None) -> CaseResult:
    """Render and validate ``case``, then run every check through each frontend that can trace it
    (restricted to ``frontends`` if given)."""
    t0 = time.perf_counter()
    program = render(case)
    res = CaseResult(case, program)
    res.invalid = validate(program.source, check_seed(case))
    if res.invalid is None:
        mod = load(program.source)
        for fe in program.frontends:
            if frontends is None or fe in frontends:
                res.outcomes.append(check_model(mod.build, mod.inputs, frontend=fe, seed=check_seed(case),
                                                traps=program.traps, dtype_after_trace=case.dtype_after_trace,
                                                train_mode=case.train_mode))
    res.seconds = time.perf_counter() - t0
    return res


def _fails(case: Case, failure: Failure) -> bool:
    """``case`` still fails ``failure``'s check through ``failure``'s frontend (and is a valid model)."""
    program = render(case)
    if failure.frontend not in program.frontends or validate(program.source, check_seed(case)) is not None:
        return False
    mod = load(program.source)
    out = check_model(mod.build, mod.inputs, frontend=failure.frontend, seed=check_seed(case), traps=program.traps,
                      dtype_after_trace=case.dtype_after_trace, train_mode=case.train_mode)
    return any(f.check == failure.check for f in out.failures)


def _ddmin(items: list, test: Callable[[list], bool], deadline: float) -> list:
    """Zeller's delta debugging: a 1-minimal sub-list of ``items`` for which ``test`` holds."""
    n = 2
    while len(items) >= 2 and time.monotonic() < deadline:
        size = math.ceil(len(items) / n)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        for i in range(len(chunks)):
            rest = [x for j, c in enumerate(chunks) if j != i for x in c]
            if test(rest):
                items, n = rest, max(n - 1, 2)
                break
        else:
            if n >= len(items):
                break
            n = min(len(items), 2 * n)
    return items


def shrink(case: Case, failure: Failure, *, seconds: float = 120.0) -> Case:
    """A smaller case failing the same check through the same frontend: delta debugging over the
    steps, then the case-level options dropped and each step's parameters reset to their defaults,
    where the failure persists (within ``seconds``)."""
    deadline = time.monotonic() + seconds

    def test(c: Case) -> bool:
        return time.monotonic() < deadline and _fails(c, failure)

    steps = _ddmin(list(case.steps), lambda s: test(replace(case, steps=tuple(s))), deadline)
    case = replace(case, steps=tuple(steps))
    for option, simpler in (("wrapper", None), ("dtype_after_trace", False), ("train_mode", False), ("frozen", 0),
                            ("side", 0)):
        if getattr(case, option) != simpler and test(replace(case, **{option: simpler})):
            case = replace(case, **{option: simpler})
    for i, st in enumerate(case.steps):
        if st.params:
            simpler_steps = case.steps[:i] + (Step(st.kind),) + case.steps[i + 1:]
            if test(replace(case, steps=simpler_steps)):
                case = replace(case, steps=simpler_steps)
    for i, d in enumerate(case.dims):
        for smaller in sorted({2, d // 2, d - 1} - {d}):
            if 1 <= smaller < d:
                dims = case.dims[:i] + (smaller,) + case.dims[i + 1:]
                if test(replace(case, dims=dims)):
                    case = replace(case, dims=dims)
                    break
    return case


def signature(case: Case, failure: Failure) -> tuple:
    """What tells failures apart: the check, the frontend and the steps (and options) of the case."""
    program = render(case)
    return failure.check, failure.frontend, tuple(program.kinds), tuple(sorted(program.patterns))


def repro_source(case: Case, failure: Failure, *, note: str = "") -> str:
    """A standalone script: the model, its inputs, and the check that fails (printed, then asserted)."""
    program = render(case)
    lines = program.source.rstrip("\n").splitlines()
    text = "\n".join([f"Fails: {failure}", *([note] if note else []),
                      "Run it: it prints every failure and exits non-zero while this one persists."])
    text = text.replace("\\", "\\\\").replace('"""', "'''")
    lines[0] = lines[0].removesuffix('"""') + "\n\n" + text + '\n"""'
    return "\n".join(lines) + f'''


#: (parameter, axis, positions or None, why): groups that must stay unprunable
TRAPS = {program.traps!r}


def main():
    from otograph.testing.fuzz.checks import check_model

    outcome = check_model(build, inputs, frontend={failure.frontend!r}, seed={check_seed(case)}, traps=TRAPS,
                          dtype_after_trace={case.dtype_after_trace}, train_mode={case.train_mode})
    for failure in outcome.failures:
        print(failure)
    failing = [f for f in outcome.failures if f.check == {failure.check!r}]
    assert not failing, str(failing[0])
    print("passes: {failure.check} ({failure.frontend})")


if __name__ == "__main__":
    main()
'''


def write_repro(folder: Path | str, name: str, case: Case, failure: Failure, *, note: str = "") -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}.py"
    out.write_text(repro_source(case, failure, note=note))
    return out


def kinds_of(results: Iterable[CaseResult]) -> set[str]:
    return {k for r in results for o in r.outcomes for k in o.kinds}
