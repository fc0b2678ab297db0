"""Atomic writes: a temporary file in the destination's folder, then a rename.

A reader never sees half a file, and an interrupted run leaves the previous version in place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

# the machine's refusals to store a file (not steelkit's bugs): full disk, quota, file size limit, read-only
STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


class WriteError(OSError):
    """An output could not be stored; the message names the file and the cause, the previous version stays."""


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
    except OSError as error:
        if error.errno not in STORAGE_ERRORS or isinstance(error, WriteError):
            raise
        kept = "the previous version is kept" if path.exists() else "nothing was written"
        raise WriteError(f"{path}: not written, {error.strerror.lower()} ({kept})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files ``atomic_path`` left in ``folder`` when its process was killed (a
    SIGKILL runs no clean-up) -> the files removed. For a folder one run owns, as it starts or resumes."""
    stale = [p for p in Path(folder).glob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


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
