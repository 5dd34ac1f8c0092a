"""Pictures of a search space (graphviz). Reads the analysis; never changes it.

>>> import torch, otograph
>>> from otograph.drawing import draw
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
>>> space = otograph.search_space(net, torch.randn(1, 3, 16, 16))
>>> "digraph" in draw(space).source
True
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from otograph.drawing.draw import auto_depth, draw, group_colors
from otograph.drawing.mapping import node_groups, shapes_after
from otograph.fileio import atomic_write, write_text

__all__ = ["draw", "render", "Rendered", "has_dot", "group_colors", "auto_depth", "node_groups",
           "shapes_after", "FORMATS"]

log = logging.getLogger(__name__)

FORMATS = ("svg", "pdf", "png", "dot")


def has_dot() -> bool:
    """Is graphviz's ``dot`` program on the PATH?"""
    return shutil.which("dot") is not None


@dataclass(frozen=True)
class Rendered:
    path: Path
    rendered: bool  # False when only the .dot source could be written
    message: str = ""


def render(space, path: str | Path, removed: Mapping[str, Iterable[int]] | None = None,
           depth: int | None = None, title: str | None = None) -> Rendered:
    """Draw ``space`` into ``path`` (format from its suffix: svg, pdf, png or dot).

    Without the ``dot`` program the graphviz source is written next to ``path`` as ``.dot`` and the
    message says how to render it.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown picture format {fmt!r} for {str(path)!r}; use one of {', '.join(FORMATS)}")
    graph = draw(space, removed, depth, title)
    if fmt == "dot":
        return Rendered(write_text(path, graph.source), False, "")
    if not has_dot():
        dot_path = write_text(path.with_suffix(".dot"), graph.source)
        msg = (f"graphviz's `dot` program is not installed, so {path.name} was not drawn; wrote "
               f"{dot_path} instead. Install graphviz (apt-get install graphviz, brew install graphviz) "
               f"and run: dot -T{fmt} {dot_path} -o {path}")
        return Rendered(dot_path, False, msg)
    data = graph.pipe(format=fmt)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Rendered(path, True, "")
