"""Pseudo labels: confident test predictions that join the next round's training set."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from steelkit.competition import RLE_COLUMNS

PSEUDO_COLUMNS = ("ImageId", "ClassId", "EncodedPixels", "round", "models")


def read_pseudo_labels(path: str | os.PathLike) -> pd.DataFrame:
    """A pseudo-label CSV (four rows per chosen image) as a canonical table."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pseudo labels {path}: no such file")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in PSEUDO_COLUMNS[:3] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {','.join(PSEUDO_COLUMNS)}")
    table = frame.pivot(index="ImageId", columns="ClassId", values="EncodedPixels")
    table = table.reindex(columns=["1", "2", "3", "4"], fill_value="").fillna("")
    table.columns = list(RLE_COLUMNS)
    return table.reset_index()
