"""Training on every GPU from a notebook: torchrun, one process per device, over this very steelkit.

A notebook's own process can drive one GPU; Kaggle gives two T4s. With more than one device the notebook
starts ``python -m torch.distributed.run --standalone --nproc_per_node N -m steelkit train --recipe ...``
with ``PYTHONPATH`` pointing at the folder steelkit was imported from (the inlined copy in a kernel),
streams its output into the cell, and fails the cell when the run fails. The recipe travels as its JSON
file, so both paths train exactly the same recipe, folds and outputs. ``train_in_kernel`` is what a training
notebook calls: it chooses between this and a run in its own process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import pandas as pd
import torch

import steelkit
from steelkit import checkpoint, paths, timelimit, train
from steelkit.errors import UserError
from steelkit.recipe import Recipe, override, preset


class LaunchError(UserError):
    """The torchrun run failed; the message quotes its last lines."""


def device_count() -> int:
    """CUDA devices visible to this process (0 without CUDA)."""
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


def train_in_kernel(preset_name: str, fold: int, overrides: list[str] = (), encoder_weights: str = "",
                    init_from: str = "", pseudo_labels: str = "", resume_from: str = "",
                    epochs_now: int | None = None, gpus: int | None = None, device: str | None = None,
                    time_limit: float | str | None = None, started_at: float | None = None,
                    image_cache: str = "") -> dict:
    """What a training notebook does: the preset with its overrides, every input named relative to the
    attached inputs as ``<input slug>/<path>`` (found wherever Kaggle mounts them), the output in
    <working>/<preset>-fold<k>. ``resume_from``
    names an attached earlier output of the same notebook to continue from.

    ``gpus`` (default: the CUDA devices visible) > 1: the run goes to torchrun, one process per device
    (``run_distributed``), its output streamed here; else it runs in this process. ``device`` forces one
    ("cpu": gloo processes, as the tests simulate two devices). ``time_limit`` (default
    ``timelimit.KERNEL_LIMIT``, the session limit the plan's parts fit) counts from ``started_at``
    (the notebook's start, ``time.time()``): the run stops cleanly before an epoch that would not fit, and the
    notebook ends normally, its output ready to be attached by a part that resumes it. ``image_cache``
    ("auto", "on", "off"; "" = the recipe's) decides whether the decoded images are kept in RAM."""
    out_dir = paths.working_dir() / f"{preset_name}-fold{fold}"
    time_limit = timelimit.KERNEL_LIMIT if time_limit is None else time_limit  # Kaggle always caps a session
    changes = [f"fold={fold}", *overrides]
    for field, value in (("encoder_weights", encoder_weights), ("pseudo_labels", pseudo_labels)):
        if value:
            changes.append(f"{field}={paths.resolve_input(value)}")
    if image_cache:
        changes.append(f"image_cache={image_cache}")
    if init_from:
        changes.append(f"init_checkpoint={paths.resolve_input(init_from) / checkpoint.BEST}")
    if resume_from:
        shutil.copytree(paths.resolve_input(f"{resume_from}/{out_dir.name}"), out_dir, dirs_exist_ok=True)
    recipe, data_dir = override(preset(preset_name), changes), paths.find_data_dir()
    gpus = device_count() if gpus is None else gpus
    if gpus > 1:
        print(f"{gpus} devices: training with torchrun, one process each", flush=True)
        left = None
        if time_limit is not None:  # torchrun's processes start later: they get what is left
            left = timelimit.parse_duration(time_limit) - (time.time() - (started_at or time.time()))
            if left <= 0:
                raise UserError(f"time limit {time_limit!r} already used up before training started")
        run_distributed(recipe, data_dir, out_dir, gpus, resume=bool(resume_from), epochs_now=epochs_now,
                        device=device, time_limit=left, echo=lambda line: print(line, flush=True))
        state, run = checkpoint.load_state(out_dir / checkpoint.LAST), checkpoint.read_run(out_dir)
        result = {"best_score": state["best"][0], "out": out_dir, "epochs_done": run["epochs_done"],
                  "history": state["history"], "stopped": run["stopped"]}
    else:
        result = train.train(recipe, data_dir, out_dir, resume=bool(resume_from), epochs_now=epochs_now, device=device,
                       time_limit=time_limit, started_at=started_at)
    if result["stopped"]:
        print(f"{result['stopped']}\nto continue: a kernel with RESUME_FROM naming this notebook's output "
              f"(build_kernel.py splits a long kernel into such parts), or `steelkit train --resume` on it",
              flush=True)
    return {**result, "metrics": pd.read_csv(out_dir / "metrics.csv")}
