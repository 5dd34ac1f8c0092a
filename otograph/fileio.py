"""Files: atomic writes and a staged output folder.

Everything otograph writes goes through :func:`atomic_write` (a temporary file in the same folder,
then ``os.replace``), and a whole run's folder is built under a hidden sibling and renamed into
place at the end (:func:`staged_dir`), so an interrupted run (Ctrl-C, a crash, a full disk)
leaves either the old folder or the complete new one, never half of one.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write(d / "a.txt", "w") as f:
    ...     _ = f.write("hello")
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('hello', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from otograph.errors import OtographError

__all__ = ["OutputExists", "refuse_existing", "atomic_write", "write_text", "save_tensors", "staged_dir"]


class OutputExists(OtographError):
    """The output folder exists and ``--force`` was not given."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def save_tensors(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def refuse_existing(out: str | os.PathLike, force: bool = False) -> None:
    """Raise :class:`OutputExists` if ``out`` exists and ``force`` is not set."""
    if Path(out).exists() and not force:
        raise OutputExists(f"output folder {str(out)!r} already exists; choose another --out or add --force "
                           f"to replace it")


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``out``; on success it becomes ``out`` in one rename.

    Refuses an existing ``out`` unless ``force`` (then the old folder is replaced, only once the new
    one is complete). On any exception, KeyboardInterrupt included, the hidden folder is removed.
    """
    out = Path(out)
    refuse_existing(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    stage = out.parent / f".{out.name}.partial-{tag}"
    stage.mkdir()
    try:
        yield stage
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{tag}"
            os.replace(out, old)
        os.replace(stage, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
