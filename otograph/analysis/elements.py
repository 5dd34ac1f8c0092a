"""Elements: one integer per position along a parameter axis, the atoms that units are made of."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from otograph.analysis.space import BUFFER, CONSUMER, PRODUCER

__all__ = ["ElementTable", "Entry"]

_RANK = {CONSUMER: 0, BUFFER: 1, PRODUCER: 2}


@dataclass
class Entry:
    param: str
    axis: int
    start: int
    size: int
    role: str
    is_param: bool = True

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.start, self.start + self.size, dtype=np.int64)


class ElementTable:
    """Allocates element ids per ``(tensor name, axis)``; the same key always gets the same ids."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, int], Entry] = {}
        self.size = 0

    def ids(self, name: str, axis: int, size: int, role: str, is_param: bool = True) -> np.ndarray:
        key = (name, axis)
        e = self.entries.get(key)
        if e is None:
            e = self.entries[key] = Entry(name, axis, self.size, size, role, is_param)
            self.size += size
        elif _RANK[role] > _RANK[e.role]:
            e.role = role  # a tied weight used as producer somewhere must be zeroed
        return e.ids
