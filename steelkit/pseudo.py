"""Pseudo labels: confident test predictions that join the next round's training set.

A pseudo-label CSV has four rows per chosen test image: ``ImageId, ClassId, EncodedPixels, round,
models`` (``models``: the checkpoints that made it, ``;``-separated). Rounds chain: round 2's labels come
from models trained with round 1's (``--set pseudo_labels=round1.csv``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from steelkit import atomic
from steelkit.competition import CLASSES, RLE_COLUMNS, read_csv
from steelkit.errors import UserError

PSEUDO_COLUMNS = ("ImageId", "ClassId", "EncodedPixels", "round", "models")


def read_pseudo_labels(path: str | os.PathLike) -> pd.DataFrame:
    """A pseudo-label CSV (four rows per chosen image) as a canonical table."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pseudo labels {path}: no such file")
    frame = read_csv(path)
    missing = [c for c in PSEUDO_COLUMNS[:3] if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing columns {missing}; expected {','.join(PSEUDO_COLUMNS)}")
    bad = ~frame["ClassId"].isin(["1", "2", "3", "4"])
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise UserError(f"{path}, row {row + 2}: ClassId {frame['ClassId'].iloc[row]!r} is not one of 1-4")
    twice = frame.duplicated(["ImageId", "ClassId"])
    if twice.any():
        row = int(twice.to_numpy().argmax())
        raise UserError(f"{path}, row {row + 2}: image {frame['ImageId'].iloc[row]} class "
                        f"{frame['ClassId'].iloc[row]} appears twice")
    table = frame.pivot(index="ImageId", columns="ClassId", values="EncodedPixels")
    table = table.reindex(columns=["1", "2", "3", "4"], fill_value="").fillna("")
    table.columns = list(RLE_COLUMNS)
    return table.reset_index()


def confident(cls_probs: np.ndarray, high: float = 0.95, low: float = 0.05) -> bool:
    """The first half of the seed's rule: every class probability above ``high`` or below ``low``."""
    cls_probs = np.asarray(cls_probs)
    return bool(((cls_probs > high) | (cls_probs < low)).all())


def choose(cls_probs: np.ndarray, seg_present: np.ndarray, high: float = 0.95, low: float = 0.05) -> bool:
    """The seed's rule for one image: every class probability of the classifier ensemble is above
    ``high`` or below ``low``, and the post-processed segmentation (without the classifier's gating)
    agrees with it class by class: a mask where the classifier is sure of a defect, none where it is
    sure there is none. (4,) float32 probabilities and (4,) bool -> chosen or not."""
    cls_probs, seg_present = np.asarray(cls_probs), np.asarray(seg_present, dtype=bool)
    return confident(cls_probs, high, low) and bool(((cls_probs > high) == seg_present).all())


def pseudo_rows(image_id: str, rles, round_number: int, models: str) -> list[tuple]:
    """The four rows of one chosen image."""
    return [(image_id, class_id, rle, round_number, models) for class_id, rle in zip(CLASSES, rles)]


def write_pseudo_labels(rows: list[tuple], path: str | os.PathLike) -> Path:
    """Write pseudo-label rows (ImageId, ClassId, EncodedPixels, round, models) atomically."""
    return atomic.write_csv(pd.DataFrame(rows, columns=list(PSEUDO_COLUMNS)), path)
