"""Every call of the ``kaggle`` CLI and its Python API, and what steelkit believes of their answers.

The pinned CLI (2.2.4) exits 0 when the server refused a push (``Kernel push error: ...``) and when it dropped
sources (``The following are not valid dataset sources ...``): both are failures here, quoted. Its CSV
outputs (``quota --csv``, ``competitions submissions --csv``) are read only under the header 2.2.4 prints: a
changed format is an error, never a silently misread quota or score. A code submission goes through the
Python API (``competition_submit_code``), because the CLI prints only the server's message and the API
returns the submission's ``ref``; each API call runs in a process of its own, as the CLI does.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

QUOTA_HEADER = ["resource", "used", "remaining", "total", "refreshAt"]
SUBMISSIONS_HEADER = ["ref", "fileName", "date", "description", "status", "publicScore", "privateScore"]


class KaggleError(RuntimeError):
    """Kaggle, or its CLI, failed or said no: a push, a run, a download, a submission, the quota. The message
    names the kernel or competition and quotes what kaggle said."""


def command() -> str:
    """The ``kaggle`` CLI beside this Python, else on PATH."""
    beside = Path(sys.executable).with_name("kaggle")
    found = str(beside) if beside.is_file() else shutil.which("kaggle")
    if not found:
        raise KaggleError("the kaggle CLI is not installed (pip install kaggle) or not on PATH")
    return found


def run(args: list[str], timeout: int = 300) -> tuple[int, str]:
    """``kaggle ARGS`` -> (its exit status, stdout and stderr together)."""
    done = subprocess.run([command(), *args], capture_output=True, text=True, timeout=timeout)
    return done.returncode, (done.stdout + done.stderr).strip()


def quoted(output: str, lines: int = 5) -> str:
    """The last lines of what kaggle printed, indented under the line that quotes them."""
    return "\n  ".join(output.splitlines()[-lines:] or ["(nothing)"])


def has_credentials() -> bool:
    """Whether the CLI has credentials to ask with (else asking would only fail, or wait)."""
    config = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    return bool(os.environ.get("KAGGLE_KEY") or os.environ.get("KAGGLE_API_TOKEN")
                or (config / "kaggle.json").is_file() or (config / "access_token").is_file())


def push(folder: Path, kernel_id: str) -> tuple[str, int | None]:
    """``kaggle kernels push -p FOLDER`` -> (the CLI's success line, the version it names)."""
    code, output = run(["kernels", "push", "-p", str(folder)])
    lines = output.splitlines()
    refused = [line for line in lines if line.startswith("Kernel push error")
               or re.match(r"The following are not valid .* sources", line)]
    if refused or code:
        raise KaggleError(f"{kernel_id}: the push failed; kaggle said:\n  "
                          + "\n  ".join(refused or lines[-5:] or [f"exit {code}"]))
    success = [line for line in lines if "successfully pushed" in line]
    if not success:
        raise KaggleError(f"{kernel_id}: kaggle did not confirm the push; it said:\n  {quoted(output)}")
    version = re.match(r"Kernel version (\d+) successfully pushed", success[-1])
    return success[-1], int(version[1]) if version else None


def status(kernel_id: str) -> tuple[str, str]:
    """``kaggle kernels status KERNEL`` -> (the status's name, its failure message or "")."""
    code, output = run(["kernels", "status", kernel_id], timeout=120)
    match = re.search(r'has status "(?:KernelWorkerStatus\.)?([A-Z_]+)"', output)
    if code or not match:
        raise KaggleError(f"{kernel_id}: cannot read its status; kaggle said:\n  {quoted(output)}")
    failure = re.search(r'Failure message: "(.*)"', output)
    return match[1], failure[1] if failure else ""


def output(kernel_id: str, folder: Path) -> None:
    """``kaggle kernels output KERNEL -p FOLDER -o``: the latest version's files into ``folder``."""
    code, said = run(["kernels", "output", kernel_id, "-p", str(folder), "-o"], timeout=3600)
    if code:
        raise KaggleError(f"{kernel_id}: cannot download its output; kaggle said:\n  {quoted(said)}")


def csv_rows(output: str, header: list[str], what: str) -> list[dict]:
    """The rows of a ``--csv`` answer as dicts, under ``header`` (the pinned CLI's) or a KaggleError."""
    rows = list(csv.reader(line for line in output.splitlines() if "," in line))
    if rows and rows[0] != header:
        raise KaggleError(f"kaggle {what} --csv printed the header {rows[0]}, not {header} as the pinned kaggle "
                          "2.2.4 does: its format changed, and steelkit will not guess which column is which")
    return [dict(zip(header, row)) for row in rows[1:]]


def quota() -> dict | None:
    """The weekly GPU quota, ``kaggle quota --csv`` -> {"used", "remaining", "total" (hours), "refresh"}; None
    when the CLI has no credentials or does not answer."""
    if not has_credentials():
        return None
    try:
        code, said = run(["quota", "--csv"], timeout=60)
    except (subprocess.TimeoutExpired, KaggleError):
        return None
    if code:
        return None
    for row in csv_rows(said, QUOTA_HEADER, "quota"):
        if row["resource"] == "GPU":
            used, remaining, total = (float(row[name].rstrip("h")) for name in ("used", "remaining", "total"))
            return {"used": used, "remaining": remaining, "total": total, "refresh": row["refreshAt"]}
    return None


def submissions(competition: str) -> list[dict]:
    """``kaggle competitions submissions COMPETITION --csv`` -> its rows, the status's enum prefix dropped."""
    code, said = run(["competitions", "submissions", competition, "--csv"], timeout=120)
    if code or "," not in said:
        raise KaggleError(f"cannot list the submissions of {competition}; kaggle said:\n  {quoted(said)}")
    rows = csv_rows(said, SUBMISSIONS_HEADER, "competitions submissions")
    for row in rows:
        row["status"] = row["status"].rsplit(".", 1)[-1]  # "SubmissionStatus.COMPLETE" -> "COMPLETE"
    return rows


API = """import json, sys
from kaggle import api
call, args = sys.argv[1], json.loads(sys.argv[2])
if call == "submit":
    answer = api.competition_submit_code(args["file"], args["message"], args["competition"], args["kernel"],
                                         args["version"], quiet=True)
    print(json.dumps({"ref": answer.ref, "message": answer.message}))
else:
    found = [s for s in api.competition_submissions(args["competition"]) or [] if s and s.ref == args["ref"]]
    print(json.dumps({"error": found[0].error_description if found else ""}))
"""


def api(call: str, **args) -> dict:
    """One call of the kaggle package's Python API (``API``), in a process of its own."""
    done = subprocess.run([sys.executable, "-c", API, call, json.dumps(args)], capture_output=True, text=True,
                          timeout=300)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise KaggleError(f"the kaggle API's {call} failed; it said:\n  {quoted(done.stdout + done.stderr)}") \
            from None


def submit_code(competition: str, kernel_id: str, version: int, message: str) -> tuple[int, str]:
    """Submit a code kernel's version's ``submission.csv`` -> (the submission's ref, the server's message)."""
    answer = api("submit", file="submission.csv", message=message, competition=competition, kernel=kernel_id,
                 version=version)
    if not answer.get("ref"):
        raise KaggleError(f"{kernel_id} v{version}: kaggle did not accept the submission: "
                          f"{answer.get('message') or 'no message'}")
    return answer["ref"], answer.get("message") or ""


def submission_error(competition: str, ref: int) -> str:
    """An ERROR submission's description, which the CSV leaves out."""
    return api("error", competition=competition, ref=ref).get("error", "")
