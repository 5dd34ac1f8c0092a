"""Line charts of a training run (loss, accuracy, group sparsity against steps) without matplotlib.

Drawn with Pillow when it is installed (``training.png``), else written as SVG text. A chart is a
list of panels; a panel has series ``(label, xs, ys, colour, dashed)`` and optional shaded x-ranges.

Example:
    >>> p = Panel("loss", [Series("train", [0, 1, 2], [2.0, 1.0, 0.5])])
    >>> svg = chart_svg([p], "run")
    >>> svg.startswith("<svg") and "loss" in svg
    True
"""

from __future__ import annotations

import html
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

from otograph.fileio import atomic_write, write_text

__all__ = ["Series", "Panel", "chart_svg", "chart_png", "save_chart", "has_pillow"]

W, PANEL_H, TOP, LEFT, RIGHT, BOTTOM = 900, 230, 34, 70, 190, 30


@dataclass
class Series:
    label: str
    xs: list[float]
    ys: list[float]
    color: str = "#1f77b4"
    dashed: bool = False


@dataclass
class Panel:
    title: str
    series: list[Series]
    shade: list[tuple[float, float]] = field(default_factory=list)  # x ranges, e.g. pruning periods
    ylim: tuple[float, float] | None = None
    yfmt: str = "{:.2f}"


def has_pillow() -> bool:
    try:
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    out, v = [], first
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


class _Frame:
    """Maps data to pixels for one panel."""

    def __init__(self, panel: Panel, index: int, xlim: tuple[float, float]):
        self.x0, self.x1 = LEFT, W - RIGHT
        self.y0 = index * PANEL_H + TOP
        self.y1 = (index + 1) * PANEL_H - BOTTOM + TOP - 20
        ys = [y for s in panel.series for y in s.ys if y is not None and math.isfinite(y)]
        lo, hi = panel.ylim or ((min(ys), max(ys)) if ys else (0.0, 1.0))
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        self.ylim, self.xlim = (lo, hi), xlim

    def px(self, x: float, y: float) -> tuple[float, float]:
        (a, b), (lo, hi) = self.xlim, self.ylim
        fx = (x - a) / (b - a) if b > a else 0.0
        fy = (y - lo) / (hi - lo)
        return self.x0 + fx * (self.x1 - self.x0), self.y1 - fy * (self.y1 - self.y0)


def _layout(panels: list[Panel]):
    xs = [x for p in panels for s in p.series for x in s.xs]
    xlim = (min(xs), max(xs)) if xs else (0.0, 1.0)
    return [_Frame(p, i, xlim) for i, p in enumerate(panels)], xlim


def _prims(panels: list[Panel], title: str):
    """Drawing primitives shared by both back ends: ('rect'|'line'|'poly'|'text', ...)."""
    frames, xlim = _layout(panels)
    out = [("text", W / 2, 8, title, "#000000", "middle", 14)]
    for p, fr in zip(panels, frames, strict=True):
        for a, b in p.shade:
            (xa, _), (xb, _) = fr.px(a, 0), fr.px(b, 0)
            out.append(("rect", xa, fr.y0, xb, fr.y1, "#fff1d6", None))
        out.append(("rect", fr.x0, fr.y0, fr.x1, fr.y1, None, "#888888"))
        out.append(("text", fr.x0, fr.y0 - 16, p.title, "#000000", "start", 12))
        for t in _ticks(*fr.ylim):
            _, y = fr.px(xlim[0], t)
            out.append(("line", fr.x0, y, fr.x1, y, "#eeeeee", False))
            out.append(("text", fr.x0 - 6, y - 6, p.yfmt.format(t), "#444444", "end", 10))
        for t in _ticks(*xlim, n=8):
            x, _ = fr.px(t, fr.ylim[0])
            out.append(("line", x, fr.y1, x, fr.y1 + 4, "#888888", False))
            out.append(("text", x, fr.y1 + 6, f"{t:g}", "#444444", "middle", 10))
        for i, s in enumerate(p.series):
            pts = [fr.px(x, y) for x, y in zip(s.xs, s.ys, strict=True) if y is not None and math.isfinite(y)]
            if len(pts) == 1:
                pts = pts * 2
            if pts:
                out.append(("poly", pts, s.color, s.dashed))
            ly = fr.y0 + 8 + 16 * i
            out.append(("line", fr.x1 + 12, ly + 6, fr.x1 + 36, ly + 6, s.color, s.dashed))
            out.append(("text", fr.x1 + 42, ly, s.label, "#000000", "start", 10))
    last = frames[-1]
    out.append(("text", (last.x0 + last.x1) / 2, last.y1 + 22, "training step", "#000000", "middle", 11))
    return out, len(panels) * PANEL_H + TOP + 10


def chart_svg(panels: list[Panel], title: str) -> str:
    prims, height = _prims(panels, title)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
             f'font-family="Helvetica, Arial, sans-serif"><rect width="100%" height="100%" fill="white"/>']
    for p in prims:
        if p[0] == "rect":
            _, x0, y0, x1, y1, fill, stroke = p
            parts.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
                         f'fill="{fill or "none"}" stroke="{stroke or "none"}"/>')
        elif p[0] == "line":
            _, x0, y0, x1, y1, color, dashed = p
            dash = ' stroke-dasharray="5,3"' if dashed else ""
            parts.append(f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="{color}"{dash}/>')
        elif p[0] == "poly":
            _, pts, color, dashed = p
            dash = ' stroke-dasharray="5,3"' if dashed else ""
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="1.6"{dash}/>')
        else:
            _, x, y, text, color, anchor, size = p
            parts.append(f'<text x="{x:.1f}" y="{y + size:.1f}" font-size="{size}" fill="{color}" '
                         f'text-anchor="{anchor}">{html.escape(text)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _dashed(draw, pts, color, width):
    on = True
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) // 5))
        for k in range(n):
            if on:
                a, b = k / n, (k + 1) / n
                draw.line([(x0 + a * (x1 - x0), y0 + a * (y1 - y0)), (x0 + b * (x1 - x0), y0 + b * (y1 - y0))],
                          fill=color, width=width)
            on = not on


def chart_png(panels: list[Panel], title: str) -> bytes:
    """PNG bytes (needs Pillow)."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    scale = 2  # draw at 2x for crisp lines and text
    prims, height = _prims(panels, title)
    img = Image.new("RGB", (W * scale, height * scale), "white")
    draw = ImageDraw.Draw(img)
    fonts: dict[int, object] = {}

    def font(size):
        if size not in fonts:
            try:
                fonts[size] = ImageFont.load_default(size=size * scale)
            except TypeError:  # Pillow < 10.1: one bitmap size
                fonts[size] = ImageFont.load_default()
        return fonts[size]

    def s(v):
        return v * scale

    for p in prims:
        if p[0] == "rect":
            _, x0, y0, x1, y1, fill, stroke = p
            draw.rectangle([s(x0), s(y0), s(x1), s(y1)], fill=fill, outline=stroke, width=scale if stroke else 0)
        elif p[0] in ("line", "poly"):
            if p[0] == "line":
                _, x0, y0, x1, y1, color, dashed = p
                pts, width = [(x0, y0), (x1, y1)], 1
            else:
                _, pts, color, dashed = p
                width = 2
            pts = [(s(x), s(y)) for x, y in pts]
            if dashed:
                _dashed(draw, pts, color, width * scale)
            else:
                draw.line(pts, fill=color, width=width * scale, joint="curve")
        else:
            _, x, y, text, color, anchor, size = p
            f = font(size)
            w = draw.textlength(text, font=f)
            dx = {"start": 0, "middle": -w / 2, "end": -w}[anchor]
            draw.text((s(x) + dx, s(y)), text, fill=color, font=f)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def save_chart(panels: list[Panel], title: str, path: str | Path) -> Path:
    """Write ``path`` (.png with Pillow; otherwise the same chart as .svg). Returns the path written."""
    path = Path(path)
    if path.suffix == ".png" and has_pillow():
        with atomic_write(path, "wb") as f:
            f.write(chart_png(panels, title))
        return path
    return write_text(path.with_suffix(".svg"), chart_svg(panels, title))
