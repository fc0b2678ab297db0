"""Atomic writes: a temporary file in the destination's folder, then a rename.

A reader never sees half a file, and an interrupted run leaves the previous version in place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o22)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an output gets the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_csv(frame, path: str | os.PathLike) -> Path:
    """Write a DataFrame to ``path`` atomically, without its index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Check before the work that ``path`` can be written as a file: not a folder, its folder creatable."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path}: is a folder; give a file name (e.g. {path / 'submission.csv'})")
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise PermissionError(f"{what} {path}: {parent} is not a writable folder")
    return path
