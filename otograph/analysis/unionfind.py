"""Vectorised union-find over integer elements (hook-and-compress, all in NumPy)."""

from __future__ import annotations

import numpy as np

__all__ = ["components"]


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label each of ``n`` elements with the smallest element of its connected component.

    ``a[i]`` and ``b[i]`` are joined for every ``i``.

    Example:
        >>> components(5, np.array([0, 3]), np.array([2, 4])).tolist()
        [0, 1, 0, 3, 3]
    """
    parent = np.arange(n, dtype=np.int64)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.size == 0:
        return parent
    while True:
        pa, pb = parent[a], parent[b]
        differ = pa != pb
        if not differ.any():
            return parent
        pa, pb = pa[differ], pb[differ]
        np.minimum.at(parent, np.maximum(pa, pb), np.minimum(pa, pb))
        while True:  # pointer jumping until every element points at a root
            pp = parent[parent]
            if np.array_equal(pp, parent):
                break
            parent = pp
