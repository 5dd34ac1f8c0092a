"""Aggregate case results: failures per check, coverage per rule family, op kind and pattern; a table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from otograph.analysis.registry import BUILTIN, FAMILIES
from otograph.testing.fuzz.checks import CHECKS
from otograph.testing.fuzz.generator import PATTERNS
from otograph.testing.fuzz.runner import CaseResult

__all__ = ["Summary", "FAILURE_CHECKS"]

#: every way a case can fail (the checks, a case that ran past its time limit, a worker process that died)
FAILURE_CHECKS = (*CHECKS, "timeout", "crash")


@dataclass
class Summary:
    cases: int = 0
    invalid: int = 0
    failing: int = 0
    seconds: float = 0.0
    runs: Counter = field(default_factory=Counter)  # frontend → checked runs
    checks: dict = field(default_factory=lambda: {c: Counter() for c in FAILURE_CHECKS})  # check → frontend → cases
    families: Counter = field(default_factory=Counter)  # family → cases whose analysed graph has an op of it
    kinds: Counter = field(default_factory=Counter)  # op kind → cases
    patterns: Counter = field(default_factory=Counter)  # pattern → cases
    pattern_failing: Counter = field(default_factory=Counter)  # pattern → failing cases
    steps: Counter = field(default_factory=Counter)  # step kind → cases
    prunable_cases: int = 0  # cases where some group was prunable and units were removed
    invalid_reasons: Counter = field(default_factory=Counter)
    in_place: Counter = field(default_factory=Counter)  # "shrunk" or the refusal → runs
    repros: list = field(default_factory=list)  # (signature, path, minimised?, count)

    def add(self, r: CaseResult) -> None:
        self.cases += 1
        if r.invalid:
            self.invalid += 1
            self.invalid_reasons[r.invalid[:100]] += 1
            return
        kinds = {k for o in r.outcomes for k in o.kinds}
        self.kinds.update(kinds)
        fams = {BUILTIN.rules[k].family for k in kinds if k in BUILTIN.rules}
        if any(o.opaque for o in r.outcomes):
            fams.add("opaque")
        self.families.update(fams)
        self.patterns.update(r.program.patterns)
        self.steps.update(set(r.program.kinds))
        self.runs.update(o.frontend for o in r.outcomes)
        self.prunable_cases += any(o.removed for o in r.outcomes)
        self.in_place.update(o.in_place for o in r.outcomes if o.in_place)
        seen = set()
        for f in r.failures:
            if (f.check, f.frontend) not in seen:
                self.checks.setdefault(f.check, Counter())[f.frontend] += 1
                seen.add((f.check, f.frontend))
        if r.failures:
            self.failing += 1
            self.pattern_failing.update(r.program.patterns)

    def table(self) -> str:
        lines = [f"cases {self.cases}: {self.cases - self.invalid} checked, {self.invalid} invalid (generator), "
                 f"{self.failing} failing, {self.prunable_cases} with units removed; "
                 f"{self.runs['fx']} fx runs, {self.runs['export']} export runs; {self.seconds:.1f} s", ""]
        if self.in_place:
            refused = Counter({k: n for k, n in self.in_place.items() if k != "shrunk"})
            lines += [f"in place (compress inplace=True): {self.in_place['shrunk']} runs shrunk, "
                      f"{sum(refused.values())} refused"]
            lines += [f"  {n} × {why}" for why, n in refused.most_common(5)] + [""]
        lines += [f"{'check':<10} {'failing cases':>13} {'fx':>6} {'export':>7}"]
        for c in FAILURE_CHECKS:
            n = self.checks.get(c, Counter())
            lines.append(f"{c:<10} {sum(n.values()):>13} {n['fx']:>6} {n['export']:>7}")
        lines += ["", f"{'family':<12} {'cases':>6}  op kinds (cases)"]
        for fam in (*FAMILIES, "opaque"):
            ks = sorted((k for k, r in BUILTIN.rules.items() if r.family == fam), key=lambda k: -self.kinds[k])
            detail = ", ".join(f"{k} {self.kinds[k]}" for k in ks)
            lines.append(f"{fam:<12} {self.families[fam]:>6}  {detail}")
        missing = sorted(k for k in BUILTIN.rules if not self.kinds[k] and k != "identity")
        lines.append(f"{'not seen':<12} {len(missing):>6}  {', '.join(missing) or '-'}")
        lines += ["", f"{'pattern':<15} {'cases':>6} {'failing':>8}"]
        for pat in PATTERNS:
            lines.append(f"{pat:<15} {self.patterns[pat]:>6} {self.pattern_failing[pat]:>8}")
        if self.invalid_reasons:
            lines += ["", "invalid cases (generator bugs):"]
            lines += [f"  {n} × {why}" for why, n in self.invalid_reasons.most_common(10)]
        if self.repros:
            lines += ["", "distinct failures (shortest repro of each):"]
            for sig, path, minimised, count in sorted(self.repros, key=lambda r: (len(r[0][2]), r[0])):
                check, fe, kinds, patterns = sig
                lines.append(f"  {check} ({fe}) × {count}: {' → '.join(kinds) or 'identity'}"
                             f"{' [' + ', '.join(patterns) + ']' if patterns else ''}  {path}"
                             f"{'' if minimised else '  (not minimised)'}")
        return "\n".join(lines)
