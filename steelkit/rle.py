"""Run-length encoding in the competition's convention.

Pixels are numbered from 1, top to bottom, then left to right (column-major over the image), and a
mask is written as space-separated ``start length`` pairs, sorted and not overlapping. An empty mask
is the empty string. Everything here is numpy (and cv2's transpose) and vectorised: no Python loop per run.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from steelkit.errors import UserError

IMAGE_SHAPE = (256, 1600)  # the competition's images, (H, W): the one name of this size


_scratch = threading.local()  # per-thread work buffers: fresh 400 KB arrays cost more in page faults than the work


def _buffer(name: str, size: int, dtype) -> np.ndarray:
    buffer = getattr(_scratch, name, None)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype=dtype)
        setattr(_scratch, name, buffer)
    return buffer[:size]


def _defect_columns(binary: np.ndarray) -> np.ndarray:
    """Indices of the columns of a (H, W) uint8 mask that hold a non-zero pixel."""
    if binary.shape[1] % 8 == 0 and binary.flags.c_contiguous:
        # OR the rows together eight columns at a time: a quarter of the work of binary.any(axis=0)
        words = np.bitwise_or.reduce(binary.view(np.uint64), axis=0)
        return np.flatnonzero(words.view(np.uint8))
    return np.flatnonzero(binary.any(axis=0))


def encode(mask: np.ndarray) -> str:
    """Encode a (H, W) mask (any dtype, non-zero = defect) as the competition's RLE string."""
    if mask.ndim != 2:
        raise ValueError(f"encode expects a 2-D (H, W) mask, got shape {mask.shape}")
    height = mask.shape[0]
    if mask.dtype == bool:
        binary = np.ascontiguousarray(mask).view(np.uint8)
    elif mask.dtype == np.uint8:
        binary = np.ascontiguousarray(mask)
    else:
        binary = (mask != 0).view(np.uint8)
    columns = _defect_columns(binary)
    if columns.size == 0:
        return ""
    # Only the columns between the first and last defect are read in column-major order; most masks
    # span a small part of the width. cv2.transpose is a SIMD copy, far faster than numpy's .T.copy().
    first, last = int(columns[0]), int(columns[-1]) + 1
    span = _buffer("pixels", (last - first) * height + 2, np.uint8)
    span[0] = span[-1] = 0
    cv2.transpose(binary[:, first:last], dst=span[1:-1].reshape(last - first, height))
    if mask.dtype == np.uint8:
        cv2.threshold(span, 0, 1, cv2.THRESH_BINARY, dst=span)
    changed = np.not_equal(span[1:], span[:-1], out=_buffer("changed", span.size - 1, bool))
    edges = np.flatnonzero(changed) + first * height + 1
    edges[1::2] -= edges[::2]
    return " ".join(map(str, edges.tolist()))


def parse(rle: str, shape: tuple[int, int] = IMAGE_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Check an RLE string against an image of ``shape``; return 0-based (starts, ends) int64 arrays.

    Raises ValueError naming the problem and the offending pair for an odd number of values,
    non-integers, a start below 1 or a length below 1, runs past the image's end, and runs that
    overlap or are out of order.
    """
    starts, lengths = _pairs(rle, shape)
    return starts - 1, starts - 1 + lengths


def _pairs(rle: str, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The checked (1-based starts, lengths) of an RLE string, as views of one int64 array."""
    if rle is None or (isinstance(rle, float) and np.isnan(rle)):
        rle = ""
    text = str(rle).strip()
    n_pixels = shape[0] * shape[1]
    values = None
    if text.isascii() and not text.encode().translate(None, b"0123456789 "):  # digits and spaces: parse in C
        values = np.fromstring(text, dtype=np.int64, sep=" ")
        if values.size and values.max() > n_pixels:  # too large, or clamped from an overflow: name it exactly
            values = None
    if values is None:
        values = np.array([_checked_value(token, position, n_pixels, shape)
                           for position, token in enumerate(text.split(), start=1)], dtype=np.int64)
    if values.size % 2:
        raise UserError(f"RLE has an odd number of values ({values.size}); expected start length pairs")
    starts, lengths = values[0::2], values[1::2]
    _check_runs(starts, lengths, shape)
    return starts, lengths


def _checked_value(token: str, position: int, n_pixels: int, shape: tuple[int, int]) -> int:
    """One RLE value as a Python int (no overflow), refused unless ASCII digits within the image's size."""
    digits = token[1:] if token.startswith("-") else token
    if not (digits.isascii() and digits.isdigit()):
        raise UserError(f"RLE value {token!r} at position {position} is not an integer")
    value = int(token)
    if value > n_pixels:
        shown = token if len(token) <= 30 else f"{token[:12]}...{token[-6:]} ({len(token)} digits)"
        raise UserError(f"RLE value {shown!r} at position {position} is larger than the {n_pixels} pixels of "
                        f"the image: past the end of a {shape[0]}x{shape[1]} image")
    return value


def _check_runs(starts: np.ndarray, lengths: np.ndarray, shape: tuple[int, int]) -> None:
    n_pixels = shape[0] * shape[1]
    if starts.size == 0:
        return
    ends = starts + lengths
    if starts[0] >= 1 and lengths.min() >= 1 and ends[-1] - 1 <= n_pixels and (starts[1:] >= ends[:-1]).all():
        return  # the usual case, in four vectorised checks; otherwise find and name the first bad pair
    for bad, what in ((starts < 1, "start below 1"), (lengths < 1, "length below 1"),
                      (starts - 1 + lengths > n_pixels, f"run past the end of a {shape[0]}x{shape[1]} image")):
        if bad.any():
            i = int(np.argmax(bad))
            raise UserError(f"RLE pair {i + 1} ({starts[i]} {lengths[i]}): {what}")
    overlap = starts[1:] < starts[:-1] + lengths[:-1]
    if overlap.any():
        i = int(np.argmax(overlap)) + 1
        raise UserError(f"RLE pair {i + 1} ({starts[i]} {lengths[i]}) overlaps or precedes pair {i} "
                        f"({starts[i - 1]} {lengths[i - 1]}); runs must be sorted and disjoint")


def decode(rle: str, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """Decode an RLE string into a (H, W) uint8 mask of 0 and 1.

    The array is Fortran-ordered (a transposed view of the column-major pixel order, as the runs are
    laid out), so that only the pages holding defect pixels are ever written; ``np.ascontiguousarray``
    it where C order matters.
    """
    starts, lengths = _pairs(rle, shape)
    height, width = shape
    flat = np.zeros(height * width, dtype=np.uint8)
    if starts.size:
        # the column-major index of every defect pixel, without a loop: run start + position in run
        first_of_run = np.cumsum(lengths)
        first_of_run -= lengths
        offsets = starts - first_of_run
        offsets -= 1  # 1-based starts made 0-based
        index = np.repeat(offsets, lengths)
        index += np.arange(index.size)
        flat[index] = 1
    return flat.reshape(width, height).T


def columns(rle: str, shape: tuple[int, int]) -> tuple[int, int] | None:
    """The columns ``[first, last)`` that an RLE string's runs touch, None when it is empty."""
    starts, lengths = _pairs(rle, shape)
    if not starts.size:
        return None
    return int(starts[0] - 1) // shape[0], int(starts[-1] - 2 + lengths[-1]) // shape[0] + 1


def decode_window(rle: str, shape: tuple[int, int], top: int, left: int, height: int, width: int,
                  out: np.ndarray | None = None, flip: int | None = None) -> np.ndarray | None:
    """The (height, width) window at (top, left) of an RLE string's mask as C-ordered uint8 (written into
    ``out`` where given, flipped as ``cv2.flip``'s ``flip`` code where given), or None where no run reaches
    the window's columns (``out`` untouched). Only the window's columns are decoded, then transposed by
    cv2: a training crop costs a third of the full decode, an empty class nothing."""
    starts, lengths = _pairs(rle, shape)
    if not starts.size:
        return None
    rows = shape[0]
    low, high = left * rows, (left + width) * rows  # the window's columns, in column-major pixel numbers
    begin = np.maximum(starts - 1 - low, 0)
    end = np.minimum(starts - 1 + lengths - low, high - low)
    inside = end > begin
    if not inside.any():
        return None
    begin, lengths = begin[inside], end[inside] - begin[inside]
    flat = np.zeros(width * rows, dtype=np.uint8)
    offsets = np.cumsum(lengths)
    offsets -= lengths
    index = np.repeat(begin - offsets, lengths)
    index += np.arange(index.size)
    flat[index] = 1
    window = flat.reshape(width, rows)[:, top:top + height]  # (width, height), rows contiguous: cv2 reads it
    if flip is None:
        return cv2.transpose(window, dst=out)
    return cv2.flip(cv2.transpose(window), flip, dst=out)

