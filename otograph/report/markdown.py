"""Markdown tables of measured models.

Latency cells are the median and, in brackets, the 25th–75th percentile of the timed passes; the
change says "faster" or "slower", and "within the spread" when the two ranges overlap.

Example:
    >>> from otograph.report.measure import Measurement
    >>> before = Measurement(100, 1000, {"1": 2.0, "32": 5.0}, 98.0, {"1": [1.9, 2.1], "32": [4.0, 6.0]})
    >>> after = Measurement(40, 400, {"1": 1.0, "32": 5.5}, 97.5, {"1": [0.9, 1.1], "32": [5.2, 5.8]})
    >>> print(summary_table(before, after))
    |  | before | after | change |
    |---|---:|---:|---:|
    | parameters | 100 | 40 | −60.0% |
    | FLOPs per sample | 1.00 K | 400 | −60.0% |
    | CPU latency, batch 1 | 2.00 ms [1.90–2.10] | 1.00 ms [0.90–1.10] | 2.00× faster |
    | CPU latency, batch 32 | 5.00 ms [4.00–6.00] | 5.50 ms [5.20–5.80] | 1.10× slower, within the spread |
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


def _latency(ms: float | None, spread: list[float] | None) -> str:
    if not ms:
        return "n/a"
    return f"{ms:.2f} ms" + (f" [{spread[0]:.2f}–{spread[1]:.2f}]" if spread else "")


def _speed(before: float | None, after: float | None, sb: list[float] | None, sa: list[float] | None) -> str:
    """``1.20× faster`` / ``1.10× slower``, and whether the difference is within the measured spread."""
    if not before or not after:
        return ""
    text = f"{before / after:.2f}× faster" if after <= before else f"{after / before:.2f}× slower"
    if sb and sa and sb[0] <= sa[1] and sa[0] <= sb[1]:
        text += ", within the spread"
    return text


def summary_table(before: Measurement, after: Measurement) -> str:
    """The before/after table: parameters, FLOPs, latency at each measured batch size, accuracy."""
    b, a = before, after
    rows = [("parameters", f"{b.params:,}", f"{a.params:,}", _pct(b.params, a.params)),
            ("FLOPs per sample", si(b.flops), si(a.flops), _pct(b.flops, a.flops))]
    for bs in sorted(set(b.latency_ms) | set(a.latency_ms), key=int):
        x, y = b.latency_ms.get(bs), a.latency_ms.get(bs)
        sx, sy = b.latency_spread_ms.get(bs), a.latency_spread_ms.get(bs)
        rows.append((f"CPU latency, batch {bs}", _latency(x, sx), _latency(y, sy), _speed(x, y, sx, sy)))
    if a.accuracy is not None:
        x, y = b.accuracy, a.accuracy
        change = f"{y - x:+.2f} points".replace("-", "−") if x is not None else ""
        rows.append(("validation accuracy", _or_na(x, "{:.2f}%"), _or_na(y, "{:.2f}%"), change))
    lines = ["|  | before | after | change |", "|---|---:|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
    return "\n".join(lines)
