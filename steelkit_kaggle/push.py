"""Pushing kernels in dependency order, and waiting for each, keeping the campaign record.

Kernels go in dependency order (after every kernel whose output they attach). With ``wait``, every kernel
is polled until the version pushed is COMPLETE before the next is pushed (Kaggle attaches a source's latest
completed version: pushed earlier, a dependent would run without it); ERROR, CANCEL... stop the push with the
failure message. What the CLI prints is read by ``kaggle_cli``. The campaign record (``campaign``) makes the
same command resume an interrupted chain; ``build_kernel.py push`` composes this with ``fetch``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from steelkit_kaggle import campaign, kaggle_cli
from steelkit_kaggle.kaggle_cli import KaggleError


def wait_for(kernel_id: str, item: dict, save, poll_seconds: float = 60, timeout_seconds: float = 13 * 3600,
             stale_seconds: float = 1800, echo=print) -> None:
    """Poll until the version recorded in ``item`` is COMPLETE; KaggleError when it fails or is cancelled.

    ``kaggle kernels status`` does not say which version a status belongs to, and right after a push it may
    still report the previous version's session. So an end state (COMPLETE, ERROR...) is believed only once
    this version has been seen QUEUED or RUNNING since its push (``item["seen_running"]``, kept in the
    record across runs of this command). A kernel that keeps showing an end state without having been seen
    running for ``stale_seconds`` is an error that says so: steelkit cannot tell, and will not guess."""
    started, said = time.time(), None
    while True:
        state, failure = kaggle_cli.status(kernel_id)
        ended = state == campaign.DONE or state in campaign.FAILED
        if ended and not item.get("seen_running"):
            if said != "stale":
                echo(f"  {kernel_id}: kaggle still reports {state}, which may be the previous version's: "
                     f"waiting to see version {item.get('version', '?')} queued or running")
                said = "stale"
            if time.time() - started > stale_seconds:
                raise KaggleError(f"{kernel_id}: for {stale_seconds / 60:.0f} min kaggle has reported {state} without "
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
                raise KaggleError(f"{kernel_id} ended in {state}: {failure or 'no failure message'} "
                                "(its dependents were not pushed)")
        if time.time() - started > timeout_seconds:
            raise KaggleError(f"{kernel_id}: still {state} after {timeout_seconds / 3600:.1f} h; stopped waiting "
                            "(the same command waits on)")
        time.sleep(poll_seconds)


def push(built: list[tuple[dict, Path]], user: str, record_dir: Path, sources: dict[str, list[str]],
         wait: bool = False, poll_seconds: float = 60, force: tuple = (),
         then: Callable[[dict, dict], None] | None = None, stale_seconds: float = 1800, confirmed: tuple = (),
         echo=print) -> None:
    """Push (kernel, folder) pairs, already in dependency order, keeping the campaign record in
    ``record_dir``. ``sources``: slug -> the slugs it attaches. A kernel whose recorded version has the same
    hash and is COMPLETE is skipped; one still running is waited for, not pushed again; a changed one, one
    in ``force`` and one whose sources were pushed again are pushed. With ``wait`` every kernel is waited
    for, then ``then(kernel, its record item)`` runs (fetching its outputs, say; it may mark the item
    ``unfinished`` and raise), before the next. ``confirmed``: kernels whose recorded version the user saw run
    on Kaggle's page, so that its end state is believed though it was never seen running from here."""
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
            line, version = kaggle_cli.push(folder, kernel_id)
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
            raise KaggleError(f"{kernel_id}: version {item.get('version')} {item['unfinished']}; "
                              "its dependents were not pushed (push it again with --force, with more parts or time)")
        if wait:
            if not campaign.is_complete(item):
                wait_for(kernel_id, item, save, poll_seconds, stale_seconds=stale_seconds, echo=echo)
            if then is not None:
                try:
                    then(kernel, item)
                finally:
                    save()
