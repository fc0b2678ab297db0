"""Pushing kernels with the real ``kaggle`` CLI, and believing only what it prints.

``kaggle kernels push`` exits 0 when the server refused the push (``Kernel push error: ...``) and when
it dropped sources (``The following are not valid dataset sources ...``): both are failures here, quoted.
Kernels go in dependency order (after every kernel whose output they attach). With ``wait``, every kernel
is polled with ``kaggle kernels status`` until the version pushed is COMPLETE before the next is pushed
(Kaggle attaches a source's latest completed version: pushed earlier, a dependent would run without it);
ERROR, CANCEL... stop the push with the failure message. The campaign record (``campaign``) makes the same
command resume an interrupted chain.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from steelkit_kaggle import campaign


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


def push_one(folder: Path, kernel_id: str) -> tuple[str, int | None]:
    """Push one built folder -> (the CLI's success line, the version it names); PushError quoting the CLI
    on a refusal."""
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
    version = re.match(r"Kernel version (\d+) successfully pushed", success[-1])
    return success[-1], int(version[1]) if version else None


def status(kernel_id: str) -> tuple[str, str]:
    """(status name, failure message) as ``kaggle kernels status`` prints them."""
    code, output = _run(["kernels", "status", kernel_id], timeout=120)
    match = re.search(r'has status "(?:KernelWorkerStatus\.)?([A-Z_]+)"', output)
    if code or not match:
        said = "\n  ".join(output.splitlines()[-5:])
        raise PushError(f"{kernel_id}: cannot read its status; kaggle said:\n  {said}")
    failure = re.search(r'Failure message: "(.*)"', output)
    return match[1], failure[1] if failure else ""


def wait_for(kernel_id: str, item: dict, save, poll_seconds: float = 60, timeout_seconds: float = 13 * 3600,
             stale_seconds: float = 1800, echo=print) -> None:
    """Poll until the version recorded in ``item`` is COMPLETE; PushError when it fails or is cancelled.

    ``kaggle kernels status`` does not say which version a status belongs to, and right after a push it may
    still report the previous version's session. So an end state (COMPLETE, ERROR...) is believed only once
    this version has been seen QUEUED or RUNNING since its push (``item["seen_running"]``, kept in the
    record across runs of this command). A kernel that keeps showing an end state without having been seen
    running for ``stale_seconds`` is an error that says so: steelkit cannot tell, and will not guess."""
    started, said = time.time(), None
    while True:
        state, failure = status(kernel_id)
        ended = state == campaign.DONE or state in campaign.FAILED
        if ended and not item.get("seen_running"):
            if said != "stale":
                echo(f"  {kernel_id}: kaggle still reports {state}, which may be the previous version's: "
                     f"waiting to see version {item.get('version', '?')} queued or running")
                said = "stale"
            if time.time() - started > stale_seconds:
                raise PushError(f"{kernel_id}: for {stale_seconds / 60:.0f} min kaggle has reported {state} without "
                                f"showing version {item.get('version', '?')} queued or running; the CLI cannot tell "
                                "which version that status belongs to. Check the kernel's page: if version "
                                f"{item.get('version', '?')} ran, `push --confirm {kernel_id.split('/')[-1]}` "
                                "believes it; to run it anew, `push --force` it")
        else:
            if state != item.get("status") or said == "stale":
                campaign.note_status(item, state)
                if failure:
                    item["failure"] = failure
                save()
                echo(f"  {kernel_id}: {state}")
                said = state
            if state == campaign.DONE:
                return
            if state in campaign.FAILED:
                raise PushError(f"{kernel_id} ended in {state}: {failure or 'no failure message'} "
                                "(its dependents were not pushed)")
        if time.time() - started > timeout_seconds:
            raise PushError(f"{kernel_id}: still {state} after {timeout_seconds / 3600:.1f} h; stopped waiting "
                            "(the same command waits on)")
        time.sleep(poll_seconds)


def push(built: list[tuple[dict, Path]], user: str, record_dir: Path, sources: dict[str, list[str]],
         wait: bool = False, poll_seconds: float = 60, force: tuple = (), fetch_to: Path | None = None,
         stale_seconds: float = 1800, confirmed: tuple = (), echo=print) -> None:
    """Push (kernel, folder) pairs, already in dependency order, keeping the campaign record in
    ``record_dir``. ``sources``: slug -> the slugs it attaches. A kernel whose recorded version has the same
    hash and is COMPLETE is skipped; one still running is waited for, not pushed again; a changed one, one
    in ``force`` and one whose sources were pushed again are pushed. With ``wait`` every kernel is waited
    for (and its outputs fetched to ``fetch_to``) before the next. ``confirmed``: kernels whose recorded
    version the user saw run on Kaggle's page, so that its end state is believed though it was never seen
    running from here."""
    from steelkit_kaggle import fetch

    record = campaign.load(record_dir)
    save = lambda: campaign.save(record_dir, record)  # noqa: E731
    renewed: set[str] = set()
    for kernel, folder in built:
        slug, kernel_id = kernel["slug"], f"{user}/{kernel['slug']}"
        item, digest = campaign.entry(record, slug), campaign.pushed_hash(folder)
        reason = ("forced" if slug in force else
                  "not pushed before" if not item else
                  "changed since version {}".format(item.get("version")) if item.get("hash") != digest else
                  "a source was pushed again" if renewed & set(sources.get(slug, [])) else
                  f"version {item.get('version')} ended in {item['status']}"
                  if item.get("status") in campaign.FAILED else "")
        if reason:
            line, version = push_one(folder, kernel_id)
            campaign.pushed(item, version, digest)
            save()
            renewed.add(slug)
            echo(f"{kernel_id}: {line} ({reason})")
            stale = [s for s in sources.get(slug, []) if s in renewed and not campaign.is_complete(
                record["kernels"].get(s, {}))]
            if stale and not wait:
                echo(f"  note: it attaches {', '.join(stale)}, just pushed: Kaggle attaches their last completed "
                     "version (push --wait waits for the new one first)")
        elif campaign.is_complete(item, digest):
            echo(f"{kernel_id}: version {item.get('version')} is COMPLETE and unchanged: not pushed again")
        else:
            echo(f"{kernel_id}: version {item.get('version')} was pushed before ({item.get('status')}): "
                 + ("waiting for it" if wait else "not pushed again"))
        if slug in confirmed and not reason and item:
            item["seen_running"] = True
            save()
        if item.get("unfinished") and not reason:
            raise PushError(f"{kernel_id}: version {item.get('version')} {item['unfinished']}; "
                            "its dependents were not pushed (push it again with --force, with more parts or time)")
        if wait:
            if not campaign.is_complete(item):
                wait_for(kernel_id, item, save, poll_seconds, stale_seconds=stale_seconds, echo=echo)
            if fetch_to is not None and not item.get("fetched"):
                try:
                    item["fetched"] = str(fetch.fetch(kernel, user, fetch_to, echo=echo))
                except PushError:
                    folder = Path(fetch_to) / slug
                    stopped = fetch.unfinished(kernel, folder) if folder.is_dir() else ""
                    if stopped:  # COMPLETE on Kaggle, but the model is not what its dependents expect
                        item["unfinished"] = stopped
                        save()
                    raise
                save()


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
