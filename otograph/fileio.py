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
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import torch

from otograph.errors import OtographError

__all__ = ["OutputExists", "refuse_existing", "atomic_write", "write_text", "save_tensors", "staged_dir"]


class OutputExists(OtographError):
    """The output folder exists (and ``--force`` was not given, or may not replace it), or cannot be made."""


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


def refuse_existing(out: str | os.PathLike, force: bool = False, *, marker: str | None = None,
                    owned: Collection[str] = ()) -> None:
    """Raise unless ``out`` can become a new folder, or (``force``) a folder that may be replaced.

    Refused always: the current folder or one above it, and a path under a file. An existing ``out``
    is refused without ``force``; with it, only a folder is replaced, and when ``marker`` is given
    only one holding that file (an earlier run) and no names besides ``owned`` (nothing of the
    user's is lost). An empty folder may always be replaced.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "notes.txt").write_text("mine")
    4
    >>> for out, force in ((d / "notes.txt" / "run", False), (d, True)):
    ...     try:
    ...         refuse_existing(out, force, marker="run.json")
    ...     except OutputExists as e:
    ...         print(e.message.replace(str(d), "D"))
    cannot create 'D/notes.txt/run': 'D/notes.txt' is a file, not a folder
    --force will not replace 'D': it is not a folder written by an earlier run (it has no run.json)
    """
    path = Path(out)
    _refuse_place(path)
    if not os.path.lexists(path):
        return
    why = _not_replaceable(path, marker, owned)
    if not force:
        hint = "choose another --out" + (" or add --force to replace it" if why is None else "")
        raise OutputExists(f"output folder {str(out)!r} already exists", hint=hint)
    if why is not None:
        raise OutputExists(f"--force will not replace {str(out)!r}: {why}",
                           hint="choose another --out (or move it away yourself)")


def _refuse_place(path: Path) -> None:
    """The current folder (or one above it), or a path under a file, is never an output folder."""
    full = Path(os.path.abspath(path))
    here = Path.cwd()
    if full == here or full in here.parents:
        raise OutputExists(f"output folder {str(path)!r} is the current folder or contains it",
                           hint="name a new folder, e.g. --out runs/mine")
    for parent in reversed(path.parents):  # as the user spelled them
        if os.path.lexists(parent) and not parent.is_dir():
            raise OutputExists(f"cannot create {str(path)!r}: {str(parent)!r} is a file, not a folder",
                               hint="choose another --out")


def _not_replaceable(path: Path, marker: str | None, owned: Collection[str]) -> str | None:
    """Why ``path`` may not be replaced, or None."""
    if path.is_symlink() or not path.is_dir():
        return "it is a file, not a folder" if not path.is_symlink() else "it is a link"
    names = {p.name for p in path.iterdir()}
    if not names or marker is None:
        return None
    if marker not in names:
        return f"it is not a folder written by an earlier run (it has no {marker})"
    foreign = sorted(names - set(owned) - {marker})
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        return f"it holds files an earlier run did not write ({shown})"
    return None


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, force: bool = False, *, marker: str | None = None,
               owned: Collection[str] = ()) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``out``; on success it becomes ``out`` in one rename.

    ``out`` is checked by :func:`refuse_existing` (``force``, ``marker``, ``owned``) before and again
    just before the rename; an old folder is replaced only once the new one is complete. On any
    exception, KeyboardInterrupt included, the hidden folder is removed.
    """
    out = Path(out)
    refuse_existing(out, force, marker=marker, owned=owned)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    stage = out.parent / f".{out.name}.partial-{tag}"
    stage.mkdir()
    try:
        yield stage
        refuse_existing(out, force, marker=marker, owned=owned)  # nothing of the user's appeared meanwhile
        old = None
        if os.path.lexists(out):
            old = out.parent / f".{out.name}.old-{tag}"
            os.replace(out, old)
        os.replace(stage, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
