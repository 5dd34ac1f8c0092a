"""Line charts of a training run (loss, accuracy, sparsity against steps), drawn with matplotlib.

A chart is a column of panels sharing the x axis; a panel has series (label, xs, ys, colour, dashed)
and optional shaded x ranges (e.g. the pruning periods).

Example:
    >>> import tempfile, pathlib
    >>> p = Panel("loss", [Series("train", [0, 1, 2], [2.0, 1.0, 0.5]),
    ...                    Series("dense", [0, 1, 2], [2.0, 0.9, 0.4], dashed=True)], shade=[(0.5, 1.5)])
    >>> out = save_chart([p], "run", pathlib.Path(tempfile.mkdtemp()) / "chart.png")
    >>> out.read_bytes()[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from otograph.fileio import atomic_write

__all__ = ["Series", "Panel", "save_chart"]


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
    shade_label: str = "pruning periods"


def _draw(ax, panel: Panel) -> None:
    from matplotlib.ticker import FuncFormatter

    for i, (a, b) in enumerate(panel.shade):  # alternating shades keep adjacent ranges apart
        ax.axvspan(a, b, color="#ffc870", alpha=0.4 if i % 2 == 0 else 0.2, lw=0,
                   label=panel.shade_label if i == 0 else None)
    for s in panel.series:
        ax.plot(s.xs, s.ys, color=s.color, ls="--" if s.dashed else "-", lw=1.4, label=s.label,
                marker="o" if len(s.xs) == 1 else None)
    if panel.ylim is not None:
        ax.set_ylim(*panel.ylim)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: panel.yfmt.format(v)))
    ax.set_title(panel.title, loc="left", fontsize=10)
    ax.grid(True, color="#e6e6e6", lw=0.6)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)


def save_chart(panels: list[Panel], title: str, path: str | Path, *, dpi: int = 120) -> Path:
    """Draw ``panels`` one above the other and write them to ``path`` (any format matplotlib writes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    path = Path(path)
    fig = Figure(figsize=(9, 2.3 * len(panels) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        _draw(ax, panel)
    axes[-1].set_xlabel("training step")
    fig.suptitle(title, fontsize=11)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    return path
