"""The one place that knows where Kaggle keeps things, and where the same things live elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")
COMPETITION_SLUG = "severstal-steel-defect-detection"
INPUT_ENV = "STEELKIT_INPUT"  # a folder that plays /kaggle/input
DATA_ENV = "STEELKIT_DATA"  # the competition folder itself
WORKING_ENV = "STEELKIT_WORKING"  # a folder that plays /kaggle/working


def on_kaggle() -> bool:
    """True inside a Kaggle kernel."""
    return KAGGLE_INPUT.is_dir() and "KAGGLE_KERNEL_RUN_TYPE" in os.environ


def input_dir() -> Path:
    """The folder of attached inputs: $STEELKIT_INPUT, else /kaggle/input."""
    return Path(os.environ.get(INPUT_ENV, KAGGLE_INPUT))


def working_dir() -> Path:
    """The folder for outputs: $STEELKIT_WORKING, else /kaggle/working on Kaggle, else the cwd."""
    if WORKING_ENV in os.environ:
        return Path(os.environ[WORKING_ENV])
    return KAGGLE_WORKING if on_kaggle() else Path.cwd()


def find_data_dir(path: str | os.PathLike | None = None) -> Path:
    """Locate the competition data: ``path``, else $STEELKIT_DATA, else <input>/<competition slug>."""
    candidates = [Path(path)] if path else []
    if not candidates and DATA_ENV in os.environ:
        candidates.append(Path(os.environ[DATA_ENV]))
    if not candidates:
        candidates.append(input_dir() / COMPETITION_SLUG)
    for candidate in candidates:
        if (candidate / "train.csv").is_file() or (candidate / "sample_submission.csv").is_file():
            return candidate
    raise FileNotFoundError(
        f"no competition data in {candidates[0]} (expected train.csv or sample_submission.csv there); "
        f"pass a folder in the Kaggle layout or set ${DATA_ENV}")
