"""Training on every GPU from a notebook: torchrun, one process per device, over this very steelkit.

A notebook's own process can drive one GPU; Kaggle gives two T4s. With more than one device the notebook
starts ``python -m torch.distributed.run --standalone --nproc_per_node N -m steelkit train --recipe ...``
with ``PYTHONPATH`` pointing at the folder steelkit was imported from (the inlined copy in a kernel),
streams its output into the cell, and fails the cell when the run fails. The recipe travels as its JSON
file, so both paths train exactly the same recipe, folds and outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from pathlib import Path

from steelkit.recipe import Recipe


class LaunchError(RuntimeError):
    """The torchrun run failed; the message quotes its last lines."""


def device_count() -> int:
    """CUDA devices visible to this process (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def command(recipe_file: Path, data_dir: Path, out_dir: Path, processes: int, resume: bool = False,
            epochs_now: int | None = None, device: str | None = None, time_limit: float | None = None) -> list[str]:
    """The torchrun command line of a ``processes``-process training run."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            "-m", "steelkit", "train", "--recipe", str(recipe_file), "--data", str(data_dir), "--out", str(out_dir)]
    if resume:
        args.append("--resume")
    if epochs_now is not None:
        args += ["--epochs-now", str(epochs_now)]
    if device:
        args += ["--device", device]
    if time_limit is not None:
        args += ["--time-limit", f"{time_limit:.0f}"]
    return args


def run_distributed(recipe: Recipe, data_dir: str | os.PathLike, out_dir: str | os.PathLike, processes: int,
                    resume: bool = False, epochs_now: int | None = None, device: str | None = None,
                    time_limit: float | None = None, echo=print) -> None:
    """Train ``recipe`` with ``processes`` DDP processes; each output line goes to ``echo`` as it comes.
    Raises LaunchError when torchrun fails, quoting the ranks' error lines (else its last lines)."""
    import steelkit

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe_file = recipe.save(out_dir / "recipe.json")  # what train() writes there anyway
    package_root = str(Path(steelkit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
           "TQDM_MININTERVAL": os.environ.get("TQDM_MININTERVAL", "10")}  # bars as lines, not a flood
    last, errors = deque(maxlen=30), []
    with subprocess.Popen(command(recipe_file, Path(data_dir), out_dir, processes, resume, epochs_now, device,
                                  time_limit),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1) as proc:
        for line in proc.stdout:
            last.append(line.rstrip())
            if line.startswith("steelkit train: "):
                errors.append(line.rstrip())
            echo(line.rstrip())
    if proc.returncode:
        # the ranks' own error lines say what went wrong; torchrun's summary after them does not
        tail = "\n".join(dict.fromkeys(line for line in errors)) or "\n".join(last)
        raise LaunchError(f"training with {processes} processes failed (torchrun exit {proc.returncode}); "
                          f"its last lines:\n{tail}")
