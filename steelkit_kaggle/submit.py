"""From a completed submission kernel to a leaderboard score, with the local CV beside it.

The version recorded in the campaign is submitted to the code competition (``kaggle_cli.submit_code``),
then the competition's submissions are polled for that ref until it is scored (``kaggle_cli.submissions``).
An ERROR's description, which the CSV leaves out, comes from the API. Every
submission is a row of the ledger (``campaign.LEDGER``): kernel, version, members, post-processing, the
local CV overall and per class, public and private scores, the message.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from steelkit.errors import UserError
from steelkit_kaggle import campaign, fetch, kaggle_cli, settings
from steelkit_kaggle.kaggle_cli import KaggleError


def members(config: dict, kernel: dict, runs: Path) -> list[str]:
    """The ensemble a submission attaches: preset, fold and, where its output was fetched, its recipe's hash."""
    found = []
    for source in settings.dependencies(config, kernel):
        parameters = source["parameters"]
        if "PRESET" not in parameters:
            continue
        recipe = Path(runs) / source["slug"] / f"{parameters['PRESET']}-fold{parameters['FOLD']}" / "recipe.json"
        digest = hashlib.sha256(recipe.read_bytes()).hexdigest()[:10] if recipe.is_file() else "not fetched"
        found.append(f"{parameters['PRESET']}/fold{parameters['FOLD']}/{digest}")
    return found


def submit(config: dict, kernel: dict, user: str, record_dir: Path, runs: Path, message: str = "",
           wait: bool = True, poll_seconds: float = 60, timeout_seconds: float = 3 * 3600, echo=print) -> dict:
    """Submit the recorded version of ``kernel`` and (``wait``) wait for its scores -> its ledger row. A
    kernel that is not COMPLETE in the record is refused (ValueError, saying why); a submission that Kaggle
    scores as ERROR is a KaggleError quoting its description."""
    slug = kernel["slug"]
    if Path(kernel["source"]).name != "submission.py":
        raise UserError(f"{slug} is not a submission kernel (its source is {kernel['source']})")
    record = campaign.load(record_dir)
    item = record["kernels"].get(slug, {})
    if not campaign.is_complete(item) or not item.get("version"):
        said = (f"version {item.get('version')} is {item.get('status')}" if item else "it was never pushed")
        raise UserError(f"{slug}: {said} in {Path(record_dir) / campaign.RECORD}; only a COMPLETE version that "
                        "is the latest pushed can be submitted (push --wait it first)")
    try:
        output = fetch.recorded(kernel, item, user, runs, echo=echo)
    finally:
        campaign.save(record_dir, record)
    cv = json.loads((output / "cv.json").read_text()) if (output / "cv.json").is_file() else {}
    used = json.loads((output / "submission.inference.json").read_text()).get("postprocess", {}) \
        if (output / "submission.inference.json").is_file() else {}
    ensemble = members(config, kernel, runs)
    counts: dict[str, int] = {}
    for member in ensemble:
        counts[member.split("/")[0]] = counts.get(member.split("/")[0], 0) + 1
    named = ", ".join(f"{n} x {preset}" if n > 1 else preset for preset, n in counts.items()) or "no members found"
    message = message or (f"steelkit {slug} v{item['version']}: {named}"
                          + (f"; local CV {cv['mean']:.5f}" if cv else "; no local CV"))
    ref, said = kaggle_cli.submit_code(config["competition"], f"{user}/{slug}", item["version"], message)
    row = {"time": campaign.now(), "kernel": slug, "version": item["version"], "ref": ref,
           "members": " ".join(ensemble), "postprocess": json.dumps(used, sort_keys=True),
           "cv": f"{cv['mean']:.5f}" if cv else "", "status": "PENDING", "message": message,
           "cv_kind": cv.get("kind", "in-sample" if cv else ""),
           "cv_in_sample": f"{cv.get('in_sample_mean', cv['mean']):.5f}" if cv else "",
           "cv_seed": f"{cv['seed_mean']:.5f}" if cv.get("seed_mean") is not None else "",
           **{f"cv_class_{k + 1}": f"{v:.5f}" for k, v in enumerate(cv.get("per_class", []))}}
    campaign.write_ledger_row(record_dir, row)
    echo(f"submitted {user}/{slug} version {item['version']} as submission {ref}: {said}")
    if not wait:
        return row
    started = time.time()
    while True:
        scored = [s for s in kaggle_cli.submissions(config["competition"]) if s["ref"] == str(ref)]
        if scored and (scored[0]["status"] == campaign.DONE or scored[0]["status"] in campaign.FAILED):
            break
        if time.time() - started > timeout_seconds:
            raise KaggleError(f"submission {ref} still {scored[0]['status'] if scored else 'unlisted'} "
                              f"after {timeout_seconds / 60:.0f} min; `status` shows it when it is scored")
        time.sleep(poll_seconds)
    row.update(status=scored[0]["status"], public=scored[0]["publicScore"], private=scored[0]["privateScore"])
    if row["status"] == "ERROR":
        row["error"] = kaggle_cli.submission_error(config["competition"], ref)
        campaign.write_ledger_row(record_dir, row)
        raise KaggleError(f"submission {ref} of {user}/{slug} v{item['version']} ended in ERROR: "
                          f"{row['error'] or 'no description'}")
    campaign.write_ledger_row(record_dir, row)
    echo(f"submission {ref}: public {row['public']}, private {row['private']}"
         + (f" (local CV {row['cv']})" if row["cv"] else ""))
    return row
