"""From a completed submission kernel to a leaderboard score, with the local CV beside it.

The version recorded in the campaign is submitted to the code competition through the kaggle package's
Python API (``competition_submit_code``: the 2.2.4 CLI prints only the server's message, while the API
returns the submission's ``ref``); then ``kaggle competitions submissions <competition> --csv`` is polled for
that ref until it is scored. Its header is checked against the pinned CLI's: a changed format is an error,
never a silently wrong score. An ERROR's description (which the CSV leaves out) comes from the API. Every
submission is a row of the ledger (``campaign.LEDGER``): kernel, version, members, post-processing, the
local CV overall and per class, public and private scores, the message.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from steelkit.errors import UserError
from steelkit_kaggle import campaign, fetch, push, settings

SUBMISSIONS_HEADER = ["ref", "fileName", "date", "description", "status", "publicScore", "privateScore"]
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


def _api(call: str, **args) -> dict:
    """One call of the kaggle package's Python API, in a process of its own as the CLI runs."""
    done = subprocess.run([sys.executable, "-c", API, call, json.dumps(args)], capture_output=True, text=True,
                          timeout=300)
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        said = "\n  ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise push.PushError(f"the kaggle API's {call} failed; it said:\n  {said}") from None


def submissions(competition: str) -> list[dict]:
    """``kaggle competitions submissions COMPETITION --csv`` as rows; its header must be 2.2.4's."""
    code, output = push._run(["competitions", "submissions", competition, "--csv"], timeout=120)
    lines = [line for line in output.splitlines() if "," in line]
    if code or not lines:
        said = "\n  ".join(output.splitlines()[-5:])
        raise push.PushError(f"cannot list the submissions of {competition}; kaggle said:\n  {said}")
    rows = list(csv.reader(lines))
    if rows[0] != SUBMISSIONS_HEADER:
        raise push.PushError(f"kaggle competitions submissions --csv printed the header {rows[0]}, not "
                             f"{SUBMISSIONS_HEADER} as the pinned kaggle 2.2.4 does: its format changed, and "
                             "steelkit will not guess which column is the score")
    out = []
    for row in rows[1:]:
        item = dict(zip(SUBMISSIONS_HEADER, row))
        item["status"] = item["status"].rsplit(".", 1)[-1]  # "SubmissionStatus.COMPLETE" -> "COMPLETE"
        out.append(item)
    return out


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
    scores as ERROR is a PushError quoting its description."""
    slug = kernel["slug"]
    if Path(kernel["source"]).name != "submission.py":
        raise UserError(f"{slug} is not a submission kernel (its source is {kernel['source']})")
    record = campaign.load(record_dir)
    item = record["kernels"].get(slug, {})
    if not campaign.is_complete(item) or not item.get("version"):
        said = (f"version {item.get('version')} is {item.get('status')}" if item else "it was never pushed")
        raise UserError(f"{slug}: {said} in {Path(record_dir) / campaign.RECORD}; only a COMPLETE version that "
                        "is the latest pushed can be submitted (push --wait it first)")
    if not item.get("fetched"):
        item["fetched"] = str(fetch.fetch(kernel, user, runs, echo=echo))
        campaign.save(record_dir, record)
    output = Path(item["fetched"])
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
    answer = _api("submit", file="submission.csv", message=message, competition=config["competition"],
                  kernel=f"{user}/{slug}", version=item["version"])
    if not answer.get("ref"):
        raise push.PushError(f"{user}/{slug} v{item['version']}: kaggle did not accept the submission: "
                             f"{answer.get('message') or 'no message'}")
    row = {"time": campaign.now(), "kernel": slug, "version": item["version"], "ref": answer["ref"],
           "members": " ".join(ensemble), "postprocess": json.dumps(used, sort_keys=True),
           "cv": f"{cv['mean']:.5f}" if cv else "", "status": "PENDING", "message": message,
           "cv_kind": cv.get("kind", "in-sample" if cv else ""),
           "cv_in_sample": f"{cv.get('in_sample_mean', cv['mean']):.5f}" if cv else "",
           "cv_seed": f"{cv['seed_mean']:.5f}" if cv.get("seed_mean") is not None else "",
           **{f"cv_class_{k + 1}": f"{v:.5f}" for k, v in enumerate(cv.get("per_class", []))}}
    campaign.write_ledger_row(record_dir, row)
    echo(f"submitted {user}/{slug} version {item['version']} as submission {answer['ref']}: {answer.get('message')}")
    if not wait:
        return row
    started = time.time()
    while True:
        scored = [s for s in submissions(config["competition"]) if s["ref"] == str(answer["ref"])]
        if scored and (scored[0]["status"] == campaign.DONE or scored[0]["status"] in campaign.FAILED):
            break
        if time.time() - started > timeout_seconds:
            raise push.PushError(f"submission {answer['ref']} still {scored[0]['status'] if scored else 'unlisted'} "
                                 f"after {timeout_seconds / 60:.0f} min; `status` shows it when it is scored")
        time.sleep(poll_seconds)
    row.update(status=scored[0]["status"], public=scored[0]["publicScore"], private=scored[0]["privateScore"])
    if row["status"] == "ERROR":
        row["error"] = _api("error", competition=config["competition"], ref=answer["ref"]).get("error", "")
        campaign.write_ledger_row(record_dir, row)
        raise push.PushError(f"submission {answer['ref']} of {user}/{slug} v{item['version']} ended in ERROR: "
                             f"{row['error'] or 'no description'}")
    campaign.write_ledger_row(record_dir, row)
    echo(f"submission {answer['ref']}: public {row['public']}, private {row['private']}"
         + (f" (local CV {row['cv']})" if row["cv"] else ""))
    return row
