"""The out-of-fold file, ``oof.npz``: what a training run's validation predicted on its held-out images,
for the threshold search and the ensemble's tuning. One uncompressed ``np.savez`` archive:

- ``image_ids`` (N,), ``stage``, ``scale`` (s) and the full image ``shape`` (H, W);
- a classifier's ``cls_probs`` (N, 4) float32;
- a segmenter's ``seg_probs`` (N, 4, H/s, W/s) uint8 = round(255 p), averaged over s x s blocks, and, after
  the final full-resolution pass, its ``seg_tables`` (N, 4, pixel thresholds, sizes, 2) int32 (kept area,
  kept overlap with the truth: ``postprocess.full_resolution_stats``), ``truth_px`` (N, 4) and the grids
  they were measured on, ``table_pixel`` and ``table_sizes``.

Uncompressed, so that the maps can be read a chunk of rows at a time (``read_rows``).
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from steelkit import atomic
from steelkit.errors import UserError

FILE = "oof.npz"
IMAGE_IDS, STAGE, SCALE, SHAPE = "image_ids", "stage", "scale", "shape"
CLS_PROBS, SEG_PROBS = "cls_probs", "seg_probs"
SEG_TABLES, TRUTH_PX, TABLE_PIXEL, TABLE_SIZES = "seg_tables", "truth_px", "table_pixel", "table_sizes"


def write(path: str | os.PathLike, image_ids: list[str], stage: str, scale: int, shape, arrays: dict) -> Path:
    """Write an out-of-fold file atomically: ``arrays`` keyed by the names above."""
    unknown = set(arrays) - {CLS_PROBS, SEG_PROBS, SEG_TABLES, TRUTH_PX, TABLE_PIXEL, TABLE_SIZES}
    if unknown:
        raise UserError(f"{path}: not out-of-fold arrays: {sorted(unknown)}")
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **{IMAGE_IDS: np.array(image_ids), SCALE: scale, SHAPE: np.array(shape), STAGE: stage},
                 **arrays)
    return Path(path)


def file_of(folder) -> Path:
    """A training output's out-of-fold file (or the file itself)."""
    path = Path(folder) / FILE if Path(folder).is_dir() else Path(folder)
    if not path.is_file():
        raise FileNotFoundError(f"no out-of-fold file {path}; train with steelkit first")
    return path


def open_file(path: Path, key: str | None = None):
    """The archive (np.load's lazy NpzFile); with ``key``, refused unless it holds that array."""
    try:
        data = np.load(path)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise UserError(f"{path}: not a readable out-of-fold file ({error})") from None
    if key is not None and key not in data.files:
        raise UserError(f"{path} holds no {key} (a {data[STAGE] if STAGE in data.files else 'non-steelkit'} output)")
    return data


def image_ids(path: Path) -> list[str]:
    return open_file(path)[IMAGE_IDS].tolist()


def meta(data) -> dict:
    return {"scale": int(data[SCALE]), "shape": tuple(int(v) for v in data[SHAPE])}


def has_tables(path: Path) -> bool:
    return path.is_file() and SEG_TABLES in np.load(path).files


def load(folders, key: str) -> tuple[list[str], np.ndarray, dict]:
    """Out-of-fold probabilities of several training outputs, averaged per image over the models that
    predicted it -> (image ids, (N, 4[, h, w]) float32 in [0, 1], metadata). For the classifiers' small
    arrays; segmenter maps go class by class through ``map_sources`` and ``read_rows``."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    found = {}
    for path in map(file_of, folders):
        data = open_file(path, key)
        found = meta(data)
        values = data[key].astype(np.float32) / (255.0 if data[key].dtype == np.uint8 else 1.0)
        for image_id, value in zip(data[IMAGE_IDS].tolist(), values):
            sums[image_id] = sums.get(image_id, 0) + value
            counts[image_id] = counts.get(image_id, 0) + 1
    ids = sorted(sums)
    return ids, np.stack([sums[i] / counts[i] for i in ids]), found


def map_sources(folders, key: str = SEG_PROBS) -> tuple[list[str], list[tuple[Path, np.ndarray]], dict]:
    """Where each segmenter's out-of-fold maps are, without reading them -> (sorted image ids, per file
    (path, position of each of its rows among the ids), metadata with ``shape`` and ``scale``). Files of
    different image sizes are refused."""
    per_file, found = [], {}
    for path in map(file_of, folders):
        data = open_file(path, key)
        if found and meta(data) != found:
            raise UserError(f"{path}: images of {meta(data)['shape']} at scale {meta(data)['scale']}, the other "
                            f"out-of-fold files {found['shape']} at scale {found['scale']}")
        found = meta(data)
        per_file.append((path, data[IMAGE_IDS].tolist()))
    ids = sorted({i for _, file_ids in per_file for i in file_ids})
    position = {image_id: n for n, image_id in enumerate(ids)}
    sources = [(path, np.array([position[i] for i in file_ids], dtype=np.int64)) for path, file_ids in per_file]
    return ids, sources, found


def array_location(path: Path, key: str) -> tuple[int, tuple, np.dtype] | None:
    """(byte offset, shape, dtype) of an array that np.savez stored uncompressed inside an .npz (steelkit's
    files), so that parts of it can be read without the rest; None when it is compressed."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        name_length, extra_length = struct.unpack("<HH", handle.read(30)[26:30])
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        if fortran:
            return None
        return handle.tell(), shape, dtype


def read_rows(path: Path, key: str, chunk: int = 512):
    """Yield (first row, rows) of an (N, ...) array inside an .npz, ``chunk`` rows at a time: reading
    1.3 GB of maps never holds more than one chunk (plain reads: the file's pages stay in the page cache,
    not in this process)."""
    location = array_location(path, key)
    if location is None:
        array = np.load(path)[key]
        for start in range(0, len(array), chunk):
            yield start, array[start:start + chunk]
        return
    offset, shape, dtype = location
    row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
    with open(path, "rb") as handle:
        for start in range(0, shape[0], chunk):
            count = min(chunk, shape[0] - start)
            handle.seek(offset + start * row_bytes)
            yield start, np.fromfile(handle, dtype=dtype, count=count * row_bytes // dtype.itemsize).reshape(
                count, *shape[1:])
