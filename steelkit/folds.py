"""Multilabel-stratified K folds on class presence, deterministic for a seed.

A folds CSV (``ImageId, fold, seed``) says how it was made: the number of folds is its largest fold + 1,
the seed its ``seed`` column (absent in files made by hand or by older versions: then unknown). A run
that finds a folds file made with another number of folds or another seed than its recipe asks for stops
with an error naming both, rather than training on other folds than its recipe.json records."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from steelkit import atomic
from steelkit.competition import presence, read_csv
from steelkit.errors import UserError


def make_folds(table: pd.DataFrame, n_folds: int = 5, seed: int = 42) -> pd.DataFrame:
    """Assign every image of the canonical table a fold in [0, n_folds) -> DataFrame (ImageId, fold, seed).

    Stratified on the four presence labels plus a fifth "no defect" label, so that defect-free images
    spread evenly too.
    """
    if n_folds < 2 or len(table) < n_folds:
        raise UserError(f"cannot make {n_folds} folds from {len(table)} images")
    labels = presence(table)
    targets = np.column_stack([labels, ~labels.any(axis=1)]).astype(int)
    fold = np.full(len(table), -1, dtype=np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, valid) in enumerate(splitter.split(np.zeros(len(table)), targets)):
        fold[valid] = k
    return pd.DataFrame({"ImageId": table["ImageId"].to_numpy(), "fold": fold, "seed": seed})


def save_folds(folds: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the folds CSV atomically."""
    return atomic.write_csv(folds, path)


def read_folds(path: str | os.PathLike, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read a folds CSV; with ``table``, check that it covers exactly the table's images."""
    folds = read_csv(path)
    if not {"ImageId", "fold"} <= set(folds.columns) or folds.empty:
        raise UserError(f"{path}: expected columns ImageId,fold[,seed] and one row per image")
    numbers = pd.to_numeric(folds["fold"], errors="coerce")
    if numbers.isna().any() or (numbers < 0).any():
        row = int(numbers.isna().to_numpy().argmax()) if numbers.isna().any() else int((numbers < 0).argmax())
        raise UserError(f"{path}, row {row + 2}: fold {folds['fold'].iloc[row]!r} is not a fold number")
    folds["fold"] = numbers.astype(int)
    if "seed" in folds.columns:
        folds["seed"] = pd.to_numeric(folds["seed"], errors="coerce")
    if table is not None:
        missing = set(table["ImageId"]) - set(folds["ImageId"])
        if missing:
            raise UserError(f"{path}: no fold for {len(missing)} images, e.g. {sorted(missing)[0]}; "
                            "delete it to make new folds")
    return folds


def check_made_as(folds: pd.DataFrame, path: str | os.PathLike, n_folds: int, seed: int) -> None:
    """Raise unless the folds were made with ``n_folds`` folds and (where recorded) ``seed``."""
    found = int(folds["fold"].max()) + 1
    if found != n_folds:
        raise UserError(f"{path} holds {found} folds, the recipe asks for {n_folds}: train with "
                        f"--set n_folds={found}, or move {path} away to make {n_folds} new folds")
    seeds = set(folds["seed"].dropna().astype(int)) if "seed" in folds.columns else set()
    if seeds and seeds != {seed}:
        raise UserError(f"{path} was made with seed {sorted(seeds)[0]}, the recipe asks for folds_seed {seed}: "
                        f"train with --set folds_seed={sorted(seeds)[0]}, or move {path} away to make new folds")


def load_or_make(table: pd.DataFrame, path: str | os.PathLike, n_folds: int = 5, seed: int = 42) -> pd.DataFrame:
    """Read the folds at ``path`` if present (they must have been made with ``n_folds`` and ``seed``), else
    make and save them there."""
    path = Path(path)
    if path.is_file():
        folds = read_folds(path, table)
        check_made_as(folds, path, n_folds, seed)
        return folds
    folds = make_folds(table, n_folds, seed)
    save_folds(folds, path)
    return folds


def find(table: pd.DataFrame, data_dir: Path, out_dir: Path, folds_file: str = "", n_folds: int = 5,
         seed: int = 0) -> tuple[pd.DataFrame, Path]:
    """The folds a training run uses and their file: ``folds_file``, else the folds CSV in the data folder,
    else in the output folder, else new folds saved to the output folder (the data folder may be
    read-only, as /kaggle/input is). A file made with other folds or another seed is an error."""
    candidates = [Path(folds_file)] if folds_file else [Path(data_dir) / "folds.csv", Path(out_dir) / "folds.csv"]
    for path in candidates:
        if path.is_file():
            made = read_folds(path, table)
            check_made_as(made, path, n_folds, seed)
            return made, path
    if folds_file:
        raise FileNotFoundError(f"folds_file {folds_file}: no such file")
    return load_or_make(table, Path(out_dir) / "folds.csv", n_folds, seed), Path(out_dir) / "folds.csv"
