"""Checkpoints: weights + the recipe that made them (+ training state for resuming), written atomically.

A training output folder holds ``recipe.json``, ``best.pt`` (weights, recipe, epoch, score: what
inference loads), ``last.pt`` (everything needed to resume), ``metrics.csv``, ``oof.npz`` and ``run.json``
(whether the run finished: all its epochs and the final pass, or stopped, and why).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import torch

from steelkit import atomic
from steelkit.errors import UserError

BEST, LAST, RUN = "best.pt", "last.pt", "run.json"


def save(path: str | os.PathLike, state: dict) -> Path:
    """torch.save ``state`` to ``path`` atomically: an interruption never leaves half a checkpoint. The bytes
    are made in memory and written by Python: a disk that refuses them raises ``atomic.WriteError`` naming
    the file (torch's own writer would say only "unexpected pos")."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic.atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)


def load_state(path: str | os.PathLike) -> dict:
    """A checkpoint's dict, on the CPU. ``path`` may be a training output folder (its best.pt)."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    # weights_only: a checkpoint is tensors and plain values (steelkit stores no RNG state or other objects),
    # so unpickling one never runs code, even from someone else's attached dataset
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[-1][:200] if str(error).strip() else type(error).__name__
        raise UserError(f"checkpoint {path}: refused, it holds more than tensors and plain values (loading it "
                        f"could run code it carries; steelkit loads weights only): {reason}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise UserError(f"checkpoint {path}: not a readable checkpoint (truncated or corrupt?): {reason}") from None
    if not isinstance(state, dict) or "model" not in state or "recipe" not in state:
        raise UserError(f"checkpoint {path}: not a steelkit checkpoint (expected a dict with model and recipe)")
    check_finite(state["model"], path)
    return state


def check_finite(tensors: dict, where) -> None:
    """A ValueError naming ``where`` and how many of ``tensors`` hold NaN or infinity: weights of a diverged run
    predict nothing useful, and must never pass for a model."""
    bad = [name for name, value in tensors.items()
           if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        raise UserError(f"{where}: {len(bad)} of {len(tensors)} weight tensors are not finite (NaN or infinity), "
                        f"e.g. {bad[0]}: the run that wrote it diverged; retrain it (a lower lr, amp=false, or "
                        "checked labels)")


def save_run(out_dir: str | os.PathLike, epochs_done: int, epochs: int, stopped: str = "") -> Path:
    """``run.json``: the run finished (every epoch and the final pass) or stopped after ``epochs_done`` of
    ``epochs``, and why. A training kernel's dependents start only on a finished run."""
    finished = epochs_done >= epochs and not stopped
    state = {"finished": finished, "epochs_done": epochs_done, "epochs": epochs,
             "stopped": "" if finished else (stopped or f"stopped after epoch {epochs_done} of {epochs}")}
    return atomic.write_text(Path(out_dir) / RUN, json.dumps(state, indent=2) + "\n")


def read_run(folder: str | os.PathLike) -> dict:
    """A training output's ``run.json`` ({"finished", "epochs_done", "epochs", "stopped"}); a missing or
    unreadable one is a ValueError naming the file (an output that cannot say it finished has not)."""
    path = Path(folder) / RUN
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: missing; the run never reached its end (or a steelkit before run.json made "
                        "it)") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not readable ({error})") from None
    if not isinstance(state, dict) or not {"finished", "epochs_done", "epochs"} <= set(state):
        raise UserError(f"{path}: expected finished, epochs_done and epochs")
    return state
