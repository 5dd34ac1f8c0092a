"""Real text that every machine with Python has: the standard library's source and docstrings.

Files are those of the running interpreter's ``stdlib`` folder (``sysconfig``), without ``test``/``tests``
packages, ``idlelib``, ``site-packages`` and generated data (``pydoc_data``), read in sorted order.
A module goes to the held-out split when the CRC-32 of its dotted name is 0 mod ``HELD_OUT_MOD``
(about one module in five), so the split is by module, fixed, and the same on every machine with the
same Python version.

>>> split_of("json.decoder") in ("train", "held-out")
True
>>> first_sentence("Return the thing. It is big.")
('Return the thing.', 'It is big.')
>>> first_sentence("Summary line\\n\\nMore text here.")
('Summary line', 'More text here.')
"""

from __future__ import annotations

import ast
import re
import sysconfig
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["HELD_OUT_MOD", "Doc", "stdlib_root", "modules", "split_of", "docstrings", "sources", "first_sentence"]

HELD_OUT_MOD = 5
_SKIP = {"test", "tests", "idlelib", "site-packages", "pydoc_data", "__pycache__", "turtledemo"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@lru_cache(maxsize=1)
def modules() -> tuple[tuple[str, Path], ...]:
    """``(dotted name, path)`` of every standard-library ``.py`` file kept, sorted by name."""
    root = stdlib_root()
    out = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if _SKIP & set(rel.parts):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            out.append((".".join(parts), p))
    return tuple(sorted(out))


def split_of(module: str) -> str:
    """``"held-out"`` or ``"train"`` for a dotted module name."""
    return "held-out" if zlib.crc32(module.encode()) % HELD_OUT_MOD == 0 else "train"


@dataclass(frozen=True)
class Doc:
    module: str
    text: str


def docstrings(min_chars: int = 40, limit: int | None = None) -> dict[str, list[Doc]]:
    """Docstrings (module, class, function; ``inspect.cleandoc``-ed) of at least ``min_chars`` characters,
    per split; exact duplicates are kept once, and a held-out text also found in train is dropped.
    ``limit``: only the first ``limit`` modules of each split (quick runs)."""
    seen: dict[str, str] = {}
    out: dict[str, list[Doc]] = {"train": [], "held-out": []}
    used = {"train": 0, "held-out": 0}
    for name, path in modules():
        if limit is not None:
            if used[split_of(name)] >= limit:
                continue
            used[split_of(name)] += 1
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        split = split_of(name)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                d = ast.get_docstring(node, clean=True)
                if not d or len(d) < min_chars or d in seen:
                    continue
                seen[d] = split
                out[split].append(Doc(name, d))
    train = {d.text for d in out["train"]}
    out["held-out"] = [d for d in out["held-out"] if d.text not in train]
    return out


def sources(limit: int | None = None) -> dict[str, bytes]:
    """The source files of each split, concatenated in module order (UTF-8 bytes, one blank line between);
    ``limit``: only the first ``limit`` modules of each split (quick runs)."""
    parts: dict[str, list[bytes]] = {"train": [], "held-out": []}
    for name, path in modules():
        split = split_of(name)
        if limit is None or len(parts[split]) < limit:
            parts[split].append(path.read_bytes())
    return {k: b"\n\n".join(v) for k, v in parts.items()}


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def first_sentence(text: str) -> tuple[str, str]:
    """``(first sentence, rest)``: the first paragraph when a blank line follows it and it has no
    sentence end, else up to the first ``.``, ``!`` or ``?`` followed by white space."""
    text = text.strip()
    para, _, after = text.partition("\n\n")
    parts = _SENTENCE.split(para, maxsplit=1)
    if len(parts) == 2:
        head, tail = parts
        return " ".join(head.split()), (tail + ("\n\n" + after if after else "")).strip()
    return " ".join(para.split()), after.strip()
