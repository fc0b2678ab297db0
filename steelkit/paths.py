"""The one place that knows where Kaggle keeps things, and where the same things live elsewhere.

Inputs are found by their contents, not by one path: Kaggle mounts attached datasets at
``/kaggle/input/<slug>`` and, as users report since late 2026, at ``/kaggle/input/datasets/<owner>/<slug>``;
notebook outputs at ``/kaggle/input/<slug>`` (or ``notebooks/<owner>/<slug>``); Kaggle Models at
``/kaggle/input/<model>/<framework>/<variation>/<version>``. An input that cannot be found is an error that
names what was looked for and what the inputs folder holds.
"""

from __future__ import annotations

import os
from pathlib import Path

KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")
COMPETITION_SLUG = "severstal-steel-defect-detection"
INPUT_ENV = "STEELKIT_INPUT"  # a folder that plays /kaggle/input
DATA_ENV = "STEELKIT_DATA"  # the competition folder itself
WORKING_ENV = "STEELKIT_WORKING"  # a folder that plays /kaggle/working
OWNER_FOLDERS = ("datasets", "notebooks", "competitions", "models")  # <input>/<kind>/<owner>/<slug>


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


def describe_inputs(depth: int = 3, limit: int = 40) -> str:
    """What the inputs folder holds, ``depth`` levels down, for error messages."""
    root = input_dir()
    if not root.is_dir():
        return f"{root} does not exist"
    found = []
    level = [root]
    for _ in range(depth):
        level = sorted(p for folder in level for p in folder.iterdir() if p.is_dir())
        found += [str(p.relative_to(root)) + "/" for p in level]
    listed = ", ".join(sorted(found)[:limit]) + (" ..." if len(found) > limit else "")
    return f"{root} holds: {listed or 'nothing'}"


def input_candidates(name: str) -> list[Path]:
    """Where an attached input called ``name`` (a dataset, notebook or model slug) may be mounted."""
    root = input_dir()
    candidates = [root / name]
    for kind in OWNER_FOLDERS:
        if (root / kind).is_dir():
            candidates += sorted(owner / name for owner in (root / kind).iterdir() if owner.is_dir())
    return candidates


def find_input(name: str) -> Path:
    """The folder of the attached input ``name``, in either layout; raises naming what was looked for."""
    for candidate in input_candidates(name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"input {name!r} is not attached: looked for {input_dir() / name} and "
                            f"{input_dir()}/{{{','.join(OWNER_FOLDERS)}}}/<owner>/{name}; {describe_inputs()}")


def resolve_input(relative: str | os.PathLike) -> Path:
    """``<input slug>/<path inside it>`` -> the file or folder, wherever the input is mounted."""
    name, _, rest = str(relative).strip("/").partition("/")
    path = find_input(name) / rest if rest else find_input(name)
    if not path.exists():
        raise FileNotFoundError(f"input {relative}: {path} does not exist; {describe_inputs()}")
    return path


def _walk(root: Path, depth: int):
    level = [root] if root.is_dir() else []
    for _ in range(depth + 1):
        yield from level
        level = sorted(p for folder in level for p in folder.iterdir() if p.is_dir())


def is_competition(folder: Path) -> bool:
    return (folder / "sample_submission.csv").is_file() and (folder / "test_images").is_dir() or \
        (folder / "train.csv").is_file() and (folder / "train_images").is_dir()


def find_data_dir(path: str | os.PathLike | None = None) -> Path:
    """Locate the competition data: ``path``, else $STEELKIT_DATA, else the competition's input, else any
    attached folder laid out like it (train.csv + train_images/ or sample_submission.csv + test_images/)."""
    if path or DATA_ENV in os.environ:
        folder = Path(path or os.environ[DATA_ENV])
        if (folder / "train.csv").is_file() or (folder / "sample_submission.csv").is_file():
            return folder
        raise FileNotFoundError(f"no competition data in {folder} (expected train.csv or sample_submission.csv)")
    named = [c for c in input_candidates(COMPETITION_SLUG) if c.is_dir() and is_competition(c)]
    found = named or [folder for folder in _walk(input_dir(), 4) if is_competition(folder)]
    if found:
        return found[0]
    raise FileNotFoundError(f"no competition data found (a folder with train.csv and train_images/, or "
                            f"sample_submission.csv and test_images/); {describe_inputs()}; "
                            f"pass a folder in the Kaggle layout or set ${DATA_ENV}")


def wheel_dirs(depth: int = 5) -> list[Path]:
    """Every attached folder holding wheels (*.whl), in either layout."""
    return [folder for folder in _walk(input_dir(), depth) if any(folder.glob("*.whl"))]
