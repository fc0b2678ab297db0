"""Pushing kernels with the real ``kaggle`` CLI, and believing only what it prints.

``kaggle kernels push`` exits 0 when the server refused the push (``Kernel push error: ...``) and when
it dropped sources (``The following are not valid dataset sources ...``): both are failures here, quoted.
Kernels go in dependency order (after every kernel whose output they attach). With ``wait``, a kernel that
others attach is polled with ``kaggle kernels status`` until COMPLETE before its dependents are pushed
(Kaggle attaches a source's latest completed version: pushed earlier, a dependent would run without it);
ERROR, CANCEL... stop the push with the failure message.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

DONE, FAILED = "COMPLETE", ("ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED", "CANCELLED", "CANCELED")


class PushError(RuntimeError):
    """A push or a run on Kaggle that failed; the message names the kernel and quotes the CLI."""


def kaggle_command() -> str:
    """The ``kaggle`` CLI beside this Python, else on PATH."""
    beside = Path(sys.executable).with_name("kaggle")
    found = str(beside) if beside.is_file() else shutil.which("kaggle")
    if not found:
        raise PushError("the kaggle CLI is not installed (pip install kaggle) or not on PATH")
    return found


def _run(args: list[str], timeout: int = 300) -> tuple[int, str]:
    done = subprocess.run([kaggle_command(), *args], capture_output=True, text=True, timeout=timeout)
    return done.returncode, (done.stdout + done.stderr).strip()


def push_one(folder: Path, kernel_id: str) -> str:
    """Push one built folder; return the CLI's success line or raise PushError quoting it."""
    code, output = _run(["kernels", "push", "-p", str(folder)])
    lines = output.splitlines()
    refused = [line for line in lines if line.startswith("Kernel push error")
               or re.match(r"The following are not valid .* sources", line)]
    if refused or code:
        quoted = "\n  ".join(refused or lines[-5:] or [f"exit {code}"])
        raise PushError(f"{kernel_id}: the push failed; kaggle said:\n  {quoted}")
    success = [line for line in lines if "successfully pushed" in line]
    if not success:
        raise PushError(f"{kernel_id}: kaggle did not confirm the push; it said:\n  " + "\n  ".join(lines[-5:]))
    return success[-1]


def status(kernel_id: str) -> tuple[str, str]:
    """(status name, failure message) as ``kaggle kernels status`` prints them."""
    code, output = _run(["kernels", "status", kernel_id], timeout=120)
    match = re.search(r'has status "(?:KernelWorkerStatus\.)?([A-Z_]+)"', output)
    if code or not match:
        said = "\n  ".join(output.splitlines()[-5:])
        raise PushError(f"{kernel_id}: cannot read its status; kaggle said:\n  {said}")
    failure = re.search(r'Failure message: "(.*)"', output)
    return match[1], failure[1] if failure else ""


def wait_for(kernel_id: str, poll_seconds: float = 60, timeout_seconds: float = 12 * 3600, echo=print) -> None:
    """Poll until the kernel's run is COMPLETE; raise PushError on a failed or cancelled run."""
    started, last = time.time(), None
    while True:
        state, failure = status(kernel_id)
        if state != last:
            echo(f"  {kernel_id}: {state}")
            last = state
        if state == DONE:
            return
        if state in FAILED:
            raise PushError(f"{kernel_id} ended in {state}: {failure or 'no failure message'} "
                            "(its dependents were not pushed)")
        if time.time() - started > timeout_seconds:
            raise PushError(f"{kernel_id}: still {state} after {timeout_seconds / 3600:.1f} h; stopped waiting")
        time.sleep(poll_seconds)


def push(folders: list[tuple[dict, Path]], user: str, attached_by_others: set[str], wait: bool = False,
         poll_seconds: float = 60, echo=print) -> None:
    """Push (kernel, folder) pairs, already in dependency order; with ``wait``, wait for each kernel
    in ``attached_by_others`` to complete before going on."""
    for kernel, folder in folders:
        kernel_id = f"{user}/{kernel['slug']}"
        echo(f"{kernel_id}: {push_one(folder, kernel_id)}")
        if wait and kernel["slug"] in attached_by_others:
            wait_for(kernel_id, poll_seconds, echo=echo)


QUOTA_HEADER = ["resource", "used", "remaining", "total", "refreshAt"]  # kaggle 2.2.4's `kaggle quota --csv`


def has_credentials() -> bool:
    """Whether the kaggle CLI has credentials to ask with (else asking would only fail, or wait)."""
    import os

    config = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    return bool(os.environ.get("KAGGLE_KEY") or os.environ.get("KAGGLE_API_TOKEN")
                or (config / "kaggle.json").is_file() or (config / "access_token").is_file())


def quota() -> dict | None:
    """The weekly GPU quota as ``kaggle quota --csv`` prints it -> {"used", "remaining", "total" (hours),
    "refresh"}; None when the CLI has no credentials or does not answer. A header other than 2.2.4's is an
    error that says so (a silently misread quota would push kernels Kaggle then stops)."""
    import csv

    if not has_credentials():
        return None
    try:
        code, output = _run(["quota", "--csv"], timeout=60)
    except (subprocess.TimeoutExpired, PushError):
        return None
    lines = [line for line in output.splitlines() if "," in line]
    if code or not lines:
        return None
    rows = list(csv.reader(lines))
    if rows[0] != QUOTA_HEADER:
        raise PushError(f"kaggle quota --csv printed the header {rows[0]}, not {QUOTA_HEADER} as the pinned "
                        "kaggle 2.2.4 does: its format changed; steelkit will not guess the quota")
    for row in rows[1:]:
        if row[0] == "GPU":
            hours = [float(value.rstrip("h")) for value in row[1:4]]
            return {"used": hours[0], "remaining": hours[1], "total": hours[2], "refresh": row[4]}
    return None
