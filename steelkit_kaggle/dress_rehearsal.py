"""The dress rehearsal: every kernel of the campaign, as ``push`` would send it, run in miniature offline before
a GPU hour is spent (``build_kernel.py rehearse``; ``make demo`` runs a slice of it).

The campaign's tiny twin (``twins``) is built kernel by kernel by the code that builds it for a push, and each
notebook executed in ``.venv-kaggle`` with the network blocked (``rehearsal.run``), in dependency order, on a
synthetic competition. Each kernel gets an input folder of its own, holding what Kaggle would mount for it and
nothing more, where Kaggle mounts it: the competition, the datasets it attaches (the wheels; random weights of
the twin encoders in their real format) and the outputs of the kernels it attaches. Inputs are read-only, as
/kaggle/input is: a kernel that changes a file under them fails the rehearsal. After each
kernel, the files it must have written are checked (``settings.outputs``) and a training kernel's last part must
say that its run finished (``run.json``). The final submission is scored against the hidden truth, and every
round's local CV is printed beside its score on the hidden test set.

The record (``<out>/rehearsal.json``: per kernel the hash of what was built, its time) makes the same command
go on after the last kernel that completed, as ``push`` does: a kernel is run again when what it builds
changed or a kernel it attaches ran again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from steelkit import metric, paths, synthetic
from steelkit.competition import read_table
from steelkit_kaggle import campaign, fetch, image, notebooks, rehearsal, settings, staging, twins

USER = "steelkit-demo"
RECORD = "rehearsal.json"
TRUTH = "test_truth.csv"  # kept beside the inputs, never under them: the kernels cannot see it
OUTPUTS = "outputs"  # <out>/outputs/<slug>: each kernel's output, as Kaggle keeps it for the kernels attaching it
MOUNT = "kaggle-input"  # <out>/kaggle-input: one kernel's /kaggle/input at a time, at the same path for every one


@dataclass(frozen=True)
class Data:
    """The synthetic competition a rehearsal runs on."""

    n_train: int = 60
    n_test: int = 20
    shape: tuple[int, int] = (64, 400)
    texture: float = 0.3  # calmer sheets than the real ones: tiny twins learn a little in a few epochs
    seed: int = 0


class RehearsalFailed(RuntimeError):
    """A kernel of the rehearsal failed; the message names it (and its failing cell)."""


def competition(out: Path, data: Data, echo=print) -> Path:
    """The synthetic competition in ``<out>/input/`` (made once, reused by a rerun), its test truth moved out
    of it to ``<out>/test_truth.csv``."""
    folder = out / "input" / paths.COMPETITION_SLUG
    if (folder / "train.csv").is_file() and (out / TRUTH).is_file():
        return folder
    synthetic.make(folder, synthetic.SynthConfig(n_train=data.n_train, n_test=data.n_test, height=data.shape[0],
                                                 width=data.shape[1], texture=data.texture, seed=data.seed),
                   replace=True)
    shutil.move(str(folder / TRUTH), out / TRUTH)
    echo(f"synthetic competition: {data.n_train} train, {data.n_test} test images of {data.shape[0]}x{data.shape[1]} "
         f"(texture {data.texture:g} of the real sheets') in {folder}")
    return folder


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` -> (size, modification time): what a read-only input must keep."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def read_only(folder: Path) -> None:
    """Take the write bits off an attached input (as /kaggle/input; root ignores them, so ``snapshot`` checks)."""
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


def failing_cell(executed: Path) -> str:
    """"cell N (its first line): Error: message" of the first cell of an executed notebook that raised."""
    for number, cell in enumerate(nbformat.read(executed, 4).cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first = next((line for line in cell.source.splitlines() if line.strip()), "")
                return f"cell {number} ({first[:60]}): {output.get('ename')}: {output.get('evalue', '')[:300]}"
    return "no cell recorded an error"


def check_outputs(kernel: dict, working: Path) -> list[str]:
    """The files ``kernel`` had to write, all there (and a training kernel's last part finished) -> their names;
    RehearsalFailed naming what is wrong."""
    expected = settings.outputs(kernel)
    missing = [name for name in expected if not (working / name).is_file()]
    if missing:
        raise RehearsalFailed(f"{kernel['slug']}: its output lacks {', '.join(missing)}")
    stopped = fetch.unfinished(kernel, working)
    if stopped:
        raise RehearsalFailed(f"{kernel['slug']}: {stopped}")
    return expected


def rehearse(out: Path, profile: twins.Profile = twins.REHEARSAL, data: Data = Data(), names: list[str] = (),
             layout: str = "slug", wheels_from: Path | None = None, echo=print, progress=None) -> dict:
    """Run the twin campaign (the kernels ``names`` and what they attach, else all) in ``out``; returns
    {"config", "order", "outputs" (the folder of each kernel's output, by slug), "rounds" (per submission
    kernel: local CV, hidden-test score, all-empty), "seconds"}. RehearsalFailed names a failing kernel; a
    rerun goes on after the last kernel that completed."""
    out = Path(out).resolve()
    started = time.time()
    config = twins.load(out, profile)
    chosen = [settings.find(config, twins.twin_title(n)) for n in names] if names else config["kernels"]
    order = settings.push_order(config, _with_sources(config, chosen))
    data_dir = competition(out, data, echo)
    image.ensure(echo=echo)
    datasets = stage_datasets(out, config, wheels_from, echo)
    outputs = out / OUTPUTS
    record_path = out / RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    rerun: set[str] = set()
    for number, kernel in enumerate(order, start=1):
        slug = kernel["slug"]
        folder = notebooks.build(kernel, config, USER, out / "build", echo=lambda _: None)
        digest = campaign.pushed_hash(folder)
        sources = {s.split("/", 1)[-1] for s in kernel["kernels"]}
        if record.get(slug, {}).get("hash") == digest and (outputs / slug).is_dir() and not sources & rerun:
            echo(f"[{number}/{len(order)}] {slug}: done before ({record[slug]['seconds']:.0f} s), not run again")
            continue
        rerun.add(slug)
        record.pop(slug, None)
        inputs = mount(out / MOUNT, kernel, data_dir, datasets, outputs, layout)
        before = snapshot(inputs)
        try:
            result = rehearsal.run(folder, inputs, progress=progress)
        except Exception as error:  # nbclient's CellExecutionError, a dead kernel, a timeout
            executed = folder / f"{slug}.executed.ipynb"
            where = failing_cell(executed) if executed.is_file() else f"{type(error).__name__}: {error}"
            raise RehearsalFailed(f"{slug} failed in {where}\n  executed notebook: {executed}") from None
        changed = sorted(set(before.items()) ^ set(snapshot(inputs).items()))
        if changed:
            raise RehearsalFailed(f"{slug} changed its read-only inputs ({changed[0][0]} and {len(changed) - 1} more): "
                                  "/kaggle/input cannot be written on Kaggle")
        checked = check_outputs(kernel, result["working"])
        _unprotect(outputs / slug)
        shutil.rmtree(outputs / slug, ignore_errors=True)
        outputs.mkdir(exist_ok=True)
        shutil.move(str(result["working"]), outputs / slug)
        read_only(outputs / slug)
        record[slug] = {"hash": digest, "seconds": round(result["seconds"], 1)}
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        part = " part {}/{}".format(*kernel["part"]) if "part" in kernel else ""
        echo(f"[{number}/{len(order)}] {slug}{part}: {result['seconds']:.0f} s, outputs checked: {_files(checked)}")
    rounds = score_rounds(order, out, outputs, data)
    return {"config": config, "order": order, "outputs": outputs, "data_dir": data_dir, "rounds": rounds,
            "seconds": time.time() - started}


def mount(inputs: Path, kernel: dict, data_dir: Path, datasets: dict[str, Path], outputs: Path,
          layout: str) -> Path:
    """``inputs`` as /kaggle/input holds it for ``kernel``: the competition, the datasets it attaches and the
    outputs of the kernels it attaches, nothing else (a kernel that reads all of /kaggle/input sees only these),
    hard-linked (no copies of the checkpoints) and read-only."""
    _unprotect(inputs)
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    _link(data_dir, inputs / paths.COMPETITION_SLUG)
    for source in kernel["datasets"]:
        slug = source.split("/", 1)[-1]
        if slug not in datasets:
            raise RehearsalFailed(f"{kernel['slug']} attaches the dataset {source}, which the rehearsal does not stage "
                                  f"(it stages {', '.join(datasets)})")
        _link(datasets[slug], rehearsal.mount_path(inputs, slug, layout, "datasets", USER))
    for source in kernel["kernels"]:
        slug = source.split("/", 1)[-1]
        if not (outputs / slug).is_dir():
            raise RehearsalFailed(f"{kernel['slug']} attaches {slug}, which has no output here (not run yet)")
        _link(outputs / slug, rehearsal.mount_path(inputs, slug, layout, "notebooks", USER))
    read_only(inputs)
    return inputs


def _link(source: Path, target: Path) -> None:
    """``source`` at ``target``, its files hard-linked (copied where the file system cannot link)."""
    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, symlinks=True, copy_function=link)


def _files(names: list[str]) -> str:
    """"run/{a, b}, c": file names grouped by their folder."""
    folders: dict[str, list[str]] = {}
    for name in names:
        folder, _, file = name.rpartition("/")
        folders.setdefault(folder, []).append(file)
    return ", ".join(f"{folder}/{{{', '.join(files)}}}" if folder else ", ".join(files)
                     for folder, files in folders.items())


def _with_sources(config: dict, chosen: list[dict]) -> list[dict]:
    """``chosen`` and every kernel they attach, transitively (a rehearsal of a kernel needs its inputs)."""
    found, todo = {}, list(chosen)
    while todo:
        kernel = todo.pop()
        if kernel["slug"] not in found:
            found[kernel["slug"]] = kernel
            todo += settings.dependencies(config, kernel)
    return [k for k in config["kernels"] if k["slug"] in found]


def _unprotect(folder: Path) -> None:
    if folder.exists():
        for path in [folder, *folder.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)


def stage_datasets(out: Path, config: dict, wheels_from: Path | None, echo=print) -> dict[str, Path]:
    """The datasets the twin's kernels attach, staged once -> {slug: folder}: the wheels, and the twin
    encoders' random weights (where they are attached)."""
    wheels = out / "steelkit-wheels"
    if not (wheels / "dataset-metadata.json").is_file():
        staged = staging.stage_wheels(wheels, USER, find_links=wheels_from, echo=echo)
        echo(f"wheels dataset staged: {', '.join(w.name for w in staged)}")
    datasets = {"steelkit-wheels": wheels}
    encoders = twins.encoders(config)
    if encoders:
        weights = out / twins.WEIGHTS_DATASET
        if not all((weights / f"{e}.safetensors").is_file() for e in encoders):
            staging.stage_random_encoder_weights(weights, USER, encoders, echo=echo)
        datasets[twins.WEIGHTS_DATASET] = weights
    return datasets


def score_rounds(order: list[dict], out: Path, outputs: Path, data: Data) -> list[dict]:
    """Per submission kernel run: its local CV (cv.json) beside its score on the hidden test set."""
    truth, _, _ = read_table(out / TRUTH)
    rows = []
    for kernel in order:
        if Path(kernel["source"]).name != "submission.py":
            continue
        folder = outputs / kernel["slug"]
        table, _, _ = read_table(folder / "submission.csv")
        score, empty = metric.score_tables(truth, table, data.shape)
        cv_file = folder / "cv.json"
        cv = json.loads(cv_file.read_text()) if cv_file.is_file() else {}
        rows.append({"kernel": kernel["slug"], "round": kernel.get("round"), "folder": folder,
                     "cv": cv.get("mean"), "cv_images": cv.get("images"), "test": score, "empty": empty})
    return rows


def format_rounds(rows: list[dict]) -> str:
    """The table ``status`` shows against the leaderboard: per round, the local CV beside the hidden-test score."""
    lines = [f"{'round':>5}  {'kernel':<28} {'local CV':>9} {'hidden test':>12} {'test - CV':>10} {'all-empty':>10}"]
    for row in rows:
        cv = row["cv"]
        lines.append(f"{row['round'] if row['round'] is not None else '-'!s:>5}  {row['kernel']:<28} "
                     + (f"{cv:9.5f}" if cv is not None else f"{'-':>9}")
                     + f" {row['test']['mean']:12.5f} "
                     + (f"{row['test']['mean'] - cv:+10.5f}" if cv is not None else f"{'-':>10}")
                     + f" {row['empty']['mean']:10.5f}")
    return "\n".join(lines)


def main(out: Path, names: list[str] = (), profile: twins.Profile = twins.REHEARSAL, data: Data = Data(),
         layout: str = "slug", wheels_from: Path | None = None, echo=print) -> int:
    """``build_kernel.py rehearse``: 0 when every kernel ran and the final submission scored, else 1 naming the
    failing kernel."""
    try:
        result = rehearse(out, profile, data, names, layout, wheels_from, echo)
    except RehearsalFailed as error:
        echo(f"rehearsal failed: {error}\nthe same command goes on from this kernel once it is fixed")
        return 1
    if result["rounds"]:
        final = result["rounds"][-1]
        echo(f"\nfinal submission {final['folder'] / 'submission.csv'} on the hidden test set:")
        echo(metric.format_report(final["test"], final["empty"]))
        echo("\nlocal CV beside the hidden test set, per round:\n" + format_rounds(result["rounds"]))
    echo(f"{len(result['order'])} kernels in {result['seconds'] / 60:.1f} min (the twin's kernels.json: "
         f"{out / 'kernels.json'})")
    return 0
