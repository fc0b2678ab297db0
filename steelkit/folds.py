"""Multilabel-stratified K folds on class presence, deterministic for a seed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from steelkit import atomic
from steelkit.competition import presence


def make_folds(table: pd.DataFrame, n_folds: int = 5, seed: int = 42) -> pd.DataFrame:
    """Assign every image of the canonical table a fold in [0, n_folds) -> DataFrame (ImageId, fold).

    Stratified on the four presence labels plus a fifth "no defect" label, so that defect-free images
    spread evenly too.
    """
    if n_folds < 2 or len(table) < n_folds:
        raise ValueError(f"cannot make {n_folds} folds from {len(table)} images")
    labels = presence(table)
    targets = np.column_stack([labels, ~labels.any(axis=1)]).astype(int)
    fold = np.full(len(table), -1, dtype=np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, valid) in enumerate(splitter.split(np.zeros(len(table)), targets)):
        fold[valid] = k
    return pd.DataFrame({"ImageId": table["ImageId"].to_numpy(), "fold": fold})


def save_folds(folds: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the folds CSV atomically."""
    return atomic.write_csv(folds, path)


def read_folds(path: str | os.PathLike, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read a folds CSV; with ``table``, check that it covers exactly the table's images."""
    folds = pd.read_csv(path, dtype={"ImageId": str, "fold": int})
    if table is not None:
        missing = set(table["ImageId"]) - set(folds["ImageId"])
        if missing:
            raise ValueError(f"{path}: no fold for {len(missing)} images, e.g. {sorted(missing)[0]}; "
                             "delete it to make new folds")
    return folds


def load_or_make(table: pd.DataFrame, path: str | os.PathLike, n_folds: int = 5, seed: int = 42) -> pd.DataFrame:
    """Read the folds at ``path`` if present, else make and save them there."""
    path = Path(path)
    if path.is_file():
        return read_folds(path, table)
    folds = make_folds(table, n_folds, seed)
    save_folds(folds, path)
    return folds
