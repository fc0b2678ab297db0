"""The campaign's record, beside the built kernels: ``campaign.json`` (per kernel: the version pushed, a hash of
what was pushed, the status seen and when, its run time, whether its outputs came home) and
``submissions.csv`` (the ledger: which kernel version, which members and post-processing made which score,
with the local CV beside the public and private scores). This module alone reads and writes both; both are
written atomically and read by a person as well.

``push`` consults the record to skip a kernel whose pushed version with the same hash is COMPLETE, to go on
waiting for one that is still running, and to push again (with everything that attaches it) when the hash
changed: running the same command again resumes an interrupted chain without re-running finished work.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from steelkit import atomic
from steelkit.errors import UserError

RECORD = "campaign.json"
LEDGER = "submissions.csv"
# cv: the local CV (held-out Dice of the tuning, per class beside it); cv_in_sample: the Dice at the chosen settings
# on the images they were chosen on (optimistic); cv_seed: at the seed's settings
LEDGER_COLUMNS = ["time", "kernel", "version", "ref", "members", "postprocess", "cv", "cv_class_1", "cv_class_2",
                  "cv_class_3", "cv_class_4", "cv_kind", "cv_in_sample", "cv_seed", "status", "public", "private",
                  "message", "error"]
# The end states Kaggle reports, for a kernel's run and a submission's scoring alike (KernelWorkerStatus,
# SubmissionStatus): one home, read by push, fetch and submit
DONE = "COMPLETE"
FAILED = ("ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED", "CANCELLED", "CANCELED")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def pushed_hash(folder: Path) -> str:
    """sha256 of what a push sends: the notebook (steelkit inlined in it) and its metadata, not what a local
    run left beside them (an executed notebook, its working folder)."""
    digest = hashlib.sha256()
    meta = Path(folder) / "kernel-metadata.json"
    sent = {meta.name, json.loads(meta.read_text()).get("code_file", "")} if meta.is_file() else None
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and (sent is None or path.name in sent):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def load(folder: Path) -> dict:
    """The record in ``folder`` ({"kernels": {slug: entry}}), empty when there is none; a damaged file is an
    error naming it (guessing would re-run or skip paid GPU hours)."""
    path = Path(folder) / RECORD
    if not path.is_file():
        return {"kernels": {}}
    try:
        record = json.loads(path.read_text())
    except ValueError as error:
        raise UserError(f"{path}: not a campaign record ({error}); move it away to start afresh") from None
    if not isinstance(record.get("kernels"), dict):
        raise UserError(f"{path}: no 'kernels' object; move it away to start afresh")
    return record


def save(folder: Path, record: dict) -> Path:
    return atomic.write_text(Path(folder) / RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")


def entry(record: dict, slug: str) -> dict:
    return record["kernels"].setdefault(slug, {})


def note_status(item: dict, state: str) -> None:
    """Record a status seen: when the run was first seen queued or running, and when it ended."""
    item["status"], item["status_at"] = state, now()
    if state in ("QUEUED", "RUNNING"):
        item["seen_running"] = True
        item.setdefault("started", item["status_at"])
    elif item.get("seen_running") and "ended" not in item:
        item["ended"] = item["status_at"]
        item["run_seconds"] = seconds_between(item.get("started", item["pushed"]), item["ended"])


def pushed(item: dict, version: int | None, digest: str) -> None:
    """A new version was pushed: what was known of the previous one is gone."""
    item.clear()
    item.update(version=version, hash=digest, pushed=now(), status="PUSHED", seen_running=False, fetched="")


def is_complete(item: dict, digest: str | None = None) -> bool:
    """The version recorded finished (its COMPLETE believed, and a training run that did all its epochs: not
    ``unfinished``), and is what ``digest`` would push."""
    return item.get("status") == DONE and item.get("seen_running", False) and not item.get("unfinished") and (
        digest is None or item.get("hash") == digest)


def read_ledger(folder: Path) -> pd.DataFrame:
    path = Path(folder) / LEDGER
    if not path.is_file():
        return pd.DataFrame(columns=LEDGER_COLUMNS)
    ledger = pd.read_csv(path, dtype=str, keep_default_na=False)
    return ledger.reindex(columns=list(dict.fromkeys([*LEDGER_COLUMNS, *ledger.columns])), fill_value="")


def write_ledger_row(folder: Path, row: dict) -> Path:
    """Add the submission ``row`` (keyed by its ``ref``) to the ledger, or update it."""
    ledger = read_ledger(folder)
    row = {column: "" if row.get(column) is None else str(row.get(column, "")) for column in LEDGER_COLUMNS}
    ledger = ledger[ledger["ref"] != row["ref"]] if len(ledger) else ledger
    ledger = pd.concat([ledger, pd.DataFrame([row])], ignore_index=True)
    return atomic.write_csv(ledger[LEDGER_COLUMNS], Path(folder) / LEDGER)


def format_status(config: dict, record: dict, ledger: pd.DataFrame, quota: dict | None) -> str:
    """The kernels (state, version, run time, GPU hours used; STOPPED: a training run that ended before its last
    epoch) and the submissions (local CV, public, private)."""
    lines = [f"{'kernel':<46} {'state':<10} {'version':>7} {'run time':>9} {'GPU h':>6}  fetched"]
    used = 0.0
    for kernel in config["kernels"]:
        item = record["kernels"].get(kernel["slug"])
        if not item:
            continue
        seconds = item.get("run_seconds")
        hours = seconds / 3600 if seconds and kernel["gpu"] else 0.0
        used += hours
        believed = "" if item.get("seen_running") or item.get("status") == "PUSHED" else "?"
        state = "STOPPED" if item.get("unfinished") else item.get("status", "") + believed
        lines.append(f"{kernel['slug']:<46} {state:<10} {item.get('version') or '?'!s:>7} "
                     f"{(f'{seconds / 60:.0f} min' if seconds else '-'):>9} {hours:6.2f}  {item.get('fetched') or '-'}"
                     + (f"\n    {item['unfinished']}" if item.get("unfinished") else ""))
    lines.append(f"{len(lines) - 1} kernels pushed, {used:.2f} GPU hours used" + (
        f"; quota: {quota['remaining']:.1f} h of {quota['total']:.1f} h left, refreshes {quota['refresh']}"
        if quota else "; quota: kaggle quota did not answer"))
    if len(ledger):
        lines += ["", f"{'time':<25} {'kernel':<28} {'version':>7} {'local CV':>9} {'public':>8} {'private':>8}"
                      "  status"]
        for _, row in ledger.iterrows():
            lines.append(f"{row['time']:<25} {row['kernel']:<28} {row['version']:>7} {row['cv'] or '-':>9} "
                         f"{row['public'] or '-':>8} {row['private'] or '-':>8}  {row['status']}"
                         + (f": {row['error']}" if row["error"] else ""))
    else:
        lines.append("no submissions yet (build_kernel.py submit)")
    return "\n".join(lines)
