"""Markdown tables of measured models.

Example:
    >>> from otograph.report.measure import Measurement
    >>> before = Measurement(100, 1000, {"1": 2.0}, 98.0)
    >>> after = Measurement(40, 400, {"1": 1.0}, 97.5)
    >>> print(summary_table(before, after))
    |  | before | after | change |
    |---|---:|---:|---:|
    | parameters | 100 | 40 | −60.0% |
    | FLOPs per sample | 1.00 K | 400 | −60.0% |
    | CPU latency, batch 1 | 2.00 ms | 1.00 ms | 2.00× faster |
    | validation accuracy | 98.00% | 97.50% | −0.50 points |
"""

from __future__ import annotations

from otograph.report.measure import Measurement

__all__ = ["summary_table", "si"]


def si(x: float | None) -> str:
    """``1234567 → '1.23 M'``."""
    if x is None:
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}"


def _pct(before: float | None, after: float | None) -> str:
    if not before or after is None:
        return ""
    return f"{(after - before) / before:+.1%}".replace("-", "−")


def _or_na(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else fmt.format(x)


def summary_table(before: Measurement, after: Measurement) -> str:
    """The before/after table: parameters, FLOPs, latency at each measured batch size, accuracy."""
    b, a = before, after
    rows = [("parameters", f"{b.params:,}", f"{a.params:,}", _pct(b.params, a.params)),
            ("FLOPs per sample", si(b.flops), si(a.flops), _pct(b.flops, a.flops))]
    for bs in sorted(set(b.latency_ms) | set(a.latency_ms), key=int):
        x, y = b.latency_ms.get(bs), a.latency_ms.get(bs)
        rows.append((f"CPU latency, batch {bs}", _or_na(x or None, "{:.2f} ms"), _or_na(y or None, "{:.2f} ms"),
                     f"{x / y:.2f}× faster" if x and y else ""))
    if a.accuracy is not None:
        x, y = b.accuracy, a.accuracy
        change = f"{y - x:+.2f} points".replace("-", "−") if x is not None else ""
        rows.append(("validation accuracy", _or_na(x, "{:.2f}%"), _or_na(y, "{:.2f}%"), change))
    lines = ["|  | before | after | change |", "|---|---:|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
    return "\n".join(lines)
