"""Decoded images in RAM: one memory-mapped file of uint8 (N, H, W, C) pixels, filled once, read by every
DataLoader worker and every DDP process of a training run (each maps the same pages: no copy per process).

The file starts with a header naming what it holds: the image set (every path with its size and
modification time, hashed), the image size, the channels and the dtype. Its name is that key's hash, and
opening checks the header against the key: a cache of another image set, size or dtype is never read. A
byte per image says whether it is filled; a miss decodes the image and fills its slot (two processes
filling the same slot write the same bytes).

The file lives in /dev/shm where that has room (RAM itself), else in the temporary folder (the page cache
keeps it in RAM while memory allows), or in $STEELKIT_IMAGE_CACHE_DIR where set. ``choose`` decides whether
the images fit in the memory the cache may use, and says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from steelkit import units
from steelkit.competition import decode_image, refuse_images
from steelkit.errors import UserError

HEADER = 4096
VERSION = 1
SHARE_OF_MEMORY = 0.5  # the cache may use at most this share of the memory available when training starts
MODES = ("auto", "on", "off")
SHM_HEADROOM = 2 << 30  # bytes of /dev/shm left to the DataLoader's batches


def available_memory() -> int:
    """Bytes of memory available: /proc/meminfo's MemAvailable, less where a cgroup limit is lower (a
    container such as Kaggle's sees the host's meminfo)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else 0


def key_of(paths: list[Path], shape: tuple[int, int], channels: int, owner: str = "") -> dict:
    """What a cache of these images holds, and for whom (``owner``: the training run's output folder, so
    that a run that ends and removes its cache never pulls it from under another); any change of file,
    size, channels or dtype changes it."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = Path(path).stat()
            seen = f"{stat.st_size}\t{stat.st_mtime_ns}"
        except OSError:  # a missing image: filling names it
            seen = "missing"
        digest.update(f"{Path(path).resolve()}\t{seen}\n".encode())
    digest.update(f"owner\t{owner}\n".encode())
    return {"version": VERSION, "images": digest.hexdigest(), "count": len(paths), "shape": list(shape),
            "channels": channels, "dtype": "uint8", "owner": owner}


def _padded(size: int) -> int:
    return -(-size // HEADER) * HEADER


class ImageCache:
    """The decoded images of ``paths`` in the file ``path``; ``read(path)`` gives one as (H, W, C) uint8."""

    def __init__(self, path: Path, paths: list[Path], shape: tuple[int, int], channels: int, owner: str = ""):
        self.path, self.paths, self.shape, self.channels = Path(path), [Path(p) for p in paths], tuple(shape), channels
        self.key = key_of(self.paths, self.shape, channels, owner)
        self.slot = {str(p): i for i, p in enumerate(self.paths)}
        self.bytes = len(self.paths) * self.shape[0] * self.shape[1] * channels
        self.misses = 0
        self._flags = self._pixels = None

    @classmethod
    def create(cls, directory: str | os.PathLike, paths: list[Path], shape: tuple[int, int], channels: int,
               owner: str = "") -> ImageCache:
        """The cache of these images in ``directory``: opened if its file exists there (never rewritten),
        else made empty, atomically (a process that opens it sees a whole file or none)."""
        key = key_of([Path(p) for p in paths], shape, channels, owner)
        path = Path(directory) / f"steelkit-images-{key['images'][:16]}-{shape[0]}x{shape[1]}x{channels}.u8"
        if not path.exists():
            header = json.dumps(key).encode()
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as handle:
                handle.write(header + b"\n" + b" " * (HEADER - len(header) - 1))
                handle.truncate(HEADER + _padded(len(paths)) + key["count"] * shape[0] * shape[1] * channels)
            os.replace(tmp, path)
        return cls.open(path, paths, shape, channels, owner)

    @classmethod
    def open(cls, path: str | os.PathLike, paths: list[Path], shape: tuple[int, int], channels: int,
             owner: str = "") -> ImageCache:
        """An existing cache file, refused (ValueError naming it) unless it holds exactly these images."""
        cache = cls(Path(path), paths, shape, channels, owner)
        try:
            with open(cache.path, "rb") as handle:
                found = json.loads(handle.read(HEADER).decode().strip())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserError(f"image cache {path}: not a steelkit image cache ({error})") from None
        if found != cache.key:
            differ = sorted(k for k in set(found) | set(cache.key) if found.get(k) != cache.key.get(k))
            raise UserError(f"image cache {path} holds other images ({', '.join(differ)} differ): not used")
        return cache

    def _map(self) -> None:
        count = len(self.paths)
        self._flags = np.memmap(self.path, np.uint8, "r+", offset=HEADER, shape=(count,))
        self._pixels = np.memmap(self.path, np.uint8, "r+", offset=HEADER + _padded(count),
                                 shape=(count, *self.shape, self.channels))

    def __getstate__(self) -> dict:  # a worker or process maps the file itself: the pages, not a copy
        return {**self.__dict__, "_flags": None, "_pixels": None}

    def _store(self, slot: int) -> np.ndarray:
        image = decode_image(self.paths[slot], self.channels == 1)
        if image.shape[:2] != self.shape:  # the channels are the decode's: 1 or 3 as asked
            raise UserError(f"image {self.paths[slot]}: {image.shape[0]}x{image.shape[1]}, "
                            f"expected {self.shape[0]}x{self.shape[1]}")
        self._pixels[slot] = image
        self._flags[slot] = 1  # after the pixels: a reader that sees the flag sees them
        return image

    def read(self, path: str | os.PathLike) -> np.ndarray:
        """The image at ``path`` (one of the cache's) as a (H, W, C) uint8 view of the file; a miss decodes
        and stores it."""
        if self._pixels is None:
            self._map()
        slot = self.slot[str(path)]
        if not self._flags[slot]:
            self.misses += 1
            self._store(slot)
        return self._pixels[slot]

    def filled(self) -> int:
        """How many images are in the cache, as every process sees it."""
        if self._flags is None:
            self._map()
        return int(np.count_nonzero(self._flags))

    def fill(self, workers: int = 4) -> float:
        """Decode every image not yet cached, ``workers`` threads -> seconds. Raises ValueError naming every
        missing, unreadable or wrongly sized image (the check training makes before it starts)."""
        if self._pixels is None:
            self._map()
        started = time.perf_counter()

        def problem(slot: int) -> str | None:
            try:
                self._store(slot)
            except (OSError, ValueError) as error:
                return str(error)
            return None

        todo = np.flatnonzero(self._flags == 0).tolist()
        with ThreadPoolExecutor(workers) as pool:
            refuse_images([p for p in pool.map(problem, todo) if p], len(self.paths))
        return time.perf_counter() - started

    def remove(self) -> None:
        self._flags = self._pixels = None
        self.path.unlink(missing_ok=True)


def choose(mode: str, needed: int, directory: str = "") -> tuple[Path | None, str]:
    """Where the cache goes (None: no cache) and the line that says why. ``mode`` "auto": on where
    ``needed`` bytes fit in the share of memory the cache may use, and in the folder's free space; "on":
    wherever it fits on disk; "off": never. ``directory`` "" = /dev/shm if it has room, else the
    temporary folder."""
    if mode not in MODES:
        raise UserError(f"image_cache {mode!r}: expected one of {MODES}")
    gb = units.size(needed)
    if mode == "off":
        return None, f"image cache: off (image_cache=off): every epoch decodes its {gb} of images"
    candidates = [Path(directory)] if directory else [Path("/dev/shm"), Path(tempfile.gettempdir())]
    room = {c: shutil.disk_usage(c).free for c in candidates if c.is_dir() and os.access(c, os.W_OK)}
    # /dev/shm also carries every batch from the DataLoader's workers: the cache leaves them room
    fits = [c for c, free in room.items() if free > needed * 1.05 + (SHM_HEADROOM if c == Path("/dev/shm") else 0)]
    if not fits:
        return None, (f"image cache: off: {gb} of images do not fit in "
                      f"{', '.join(f'{c} ({units.size(room[c])} free)' for c in room) or 'a writable folder'}")
    allowed = SHARE_OF_MEMORY * available_memory()
    if mode == "auto" and needed > allowed:
        return None, (f"image cache: off: {gb} of images exceed the {units.size(allowed)} it may use "
                      f"({SHARE_OF_MEMORY:.0%} of the memory available; image_cache=on forces it)")
    return fits[0], f"image cache: on, {gb} of decoded images in {fits[0]} (image_cache=off to decode every epoch)"
