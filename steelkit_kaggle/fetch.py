"""Outputs home: a completed kernel's output downloaded with ``kaggle kernels output OWNER/SLUG -p DIR -o``
into ``runs/<slug>/``, and the files it must have written checked (``settings.outputs``). Training outputs
land as ``runs/<slug>/<preset>-fold<k>/`` (``best.pt``, ``oof.npz``...), so ``steelkit thresholds``, ``budget``
and the report read them as they read a local run. The CLI downloads the latest version's files only: fetch
after that version completed (``push --wait`` does, kernel by kernel)."""

from __future__ import annotations

import shutil
from pathlib import Path

from steelkit_kaggle import kaggle_cli, settings
from steelkit_kaggle.kaggle_cli import KaggleError


def fetch(kernel: dict, user: str, runs: Path, echo=print) -> Path:
    """Download ``kernel``'s output into ``runs/<slug>/`` (replaced whole) -> that folder; KaggleError quoting
    the CLI when it fails, or naming every file the kernel should have written and did not."""
    kernel_id, target = f"{user}/{kernel['slug']}", Path(runs) / kernel["slug"]
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        kaggle_cli.output(kernel_id, partial)
    except KaggleError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    missing = [name for name in settings.outputs(kernel) if not (partial / name).is_file()]
    if missing:
        shutil.rmtree(partial, ignore_errors=True)
        raise KaggleError(f"{kernel_id}: its output lacks {', '.join(missing)} (a {Path(kernel['source']).stem} "
                          "kernel writes them): the run did not finish its work; read its log on Kaggle")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    files = sum(1 for p in target.rglob("*") if p.is_file())
    echo(f"  {kernel_id}: {files} output files in {target}")
    stopped = unfinished(kernel, target)
    if stopped:
        raise KaggleError(f"{kernel_id}: {stopped}; its outputs are in {target}, but nothing that attaches it "
                          "starts on an unfinished model: give it more parts (kernels.json 'parts') or a longer "
                          "TIME_LIMIT and push it again with --force")
    return target


def recorded(kernel: dict, item: dict, user: str, runs: Path, echo=print) -> Path:
    """Fetch a completed kernel's outputs once, noting the folder in its campaign record ``item``
    (``fetched``) -> that folder. A training run that stopped short marks the item ``unfinished`` (what
    ``push`` then refuses to build on) before the error goes up."""
    if item.get("fetched"):
        return Path(item["fetched"])
    try:
        item["fetched"] = str(fetch(kernel, user, runs, echo=echo))
    except KaggleError:
        folder = Path(runs) / kernel["slug"]
        stopped = unfinished(kernel, folder) if folder.is_dir() else ""
        if stopped:  # COMPLETE on Kaggle, but the model is not what its dependents expect
            item["unfinished"] = stopped
        raise
    return Path(item["fetched"])


def unfinished(kernel: dict, folder: Path) -> str:
    """Why a training kernel's last part did not finish its run (its ``run.json``), "" when it did or when it
    is not a training kernel's last part (an earlier part stops by design, and its successor resumes it)."""
    from steelkit import checkpoint

    parameters = kernel["parameters"]
    if not Path(kernel["source"]).name.startswith("train_") or not settings.is_last_part(kernel):
        return ""
    try:
        run = checkpoint.read_run(Path(folder) / f"{parameters['PRESET']}-fold{parameters['FOLD']}")
    except ValueError as error:
        return f"it cannot say that its run finished: {error}"
    if run["finished"]:
        return ""
    return f"its run reached epoch {run['epochs_done']} of {run['epochs']} and stopped ({run['stopped']})"
