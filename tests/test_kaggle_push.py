"""Pushing with the real kaggle CLI against a fake Kaggle API on loopback: what the CLI prints is believed,
its exit status is not."""

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from steelkit import paths
from steelkit_kaggle import settings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = settings.load()


class FakeKaggle(http.server.BaseHTTPRequestHandler):
    """Kaggle's API as far as the kaggle CLI 2.2.4 and its Python API need it here; requests arrive through it
    as a proxy. Each push makes a new version whose statuses are ``runs[slug]`` (default RUNNING, COMPLETE;
    a first push keeps what a test put in ``statuses[slug]``); statuses are handed out in turn, the last one
    repeated. The output of a kernel is the files it must write (less ``missing[slug]``, plus ``extra[slug]``); code
    submissions get refs, and the submissions list goes through ``scoring`` (default PENDING, COMPLETE)."""

    received: list = []
    replies: dict = {}
    statuses: dict = {}
    runs: dict = {}
    versions: dict = {}
    quota: dict = {}
    missing: dict = {}
    extra: dict = {}
    scoring: list = []
    submitted: list = []

    def reply(self, data: bytes, content_type: str = "application/json"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's naming): an output file's download
        slug, name = self.path.split("/files/", 1)[1].split("/", 1)
        default = json.dumps({"finished": True, "epochs_done": 30, "epochs": 30, "stopped": ""}) \
            if name.endswith("/run.json") else f"{slug}/{name}"  # a training run that finished
        self.reply(FakeKaggle.extra.get(slug, {}).get(name, default).encode(), "application/octet-stream")

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        FakeKaggle.received.append((self.path, body))
        call = self.path.rsplit("/", 1)[-1]
        if call == "SaveKernel":
            slug = body["slug"].split("/")[-1]
            FakeKaggle.versions[slug] = FakeKaggle.versions.get(slug, 0) + 1
            if slug in FakeKaggle.runs or slug not in FakeKaggle.statuses or FakeKaggle.versions[slug] > 1:
                FakeKaggle.statuses[slug] = list(FakeKaggle.runs.get(slug, ["RUNNING", "COMPLETE"]))
            reply = {"ref": f"/code/{body['slug']}", "url": f"http://localhost/code/{body['slug']}",
                     "versionNumber": FakeKaggle.versions[slug], "error": "", **FakeKaggle.replies.get(slug, {})}
        elif call == "GetAcceleratorQuotaStatistics":
            reply = FakeKaggle.quota
        elif call == "GetKernelSessionStatus":
            queue = FakeKaggle.statuses.setdefault(body["kernelSlug"], ["COMPLETE"])
            status = queue.pop(0) if len(queue) > 1 else queue[0]
            reply = {"status": status, "failureMessage": "CUDA out of memory" if status == "ERROR" else ""}
        elif call == "ListKernelSessionOutput":
            slug = body["kernelSlug"]
            names = [n for n in settings.outputs(settings.find(CONFIG, slug))
                     if n not in FakeKaggle.missing.get(slug, [])]
            names += list(FakeKaggle.extra.get(slug, {}))
            port = self.server.server_port
            reply = {"files": [{"url": f"http://127.0.0.1:{port}/files/{slug}/{n}", "fileName": n} for n in names],
                     "log": "[]"}
        elif call == "CreateCodeSubmission":
            ref = 1000 + len(FakeKaggle.submitted)
            FakeKaggle.submitted.append({"ref": ref, "description": body.get("submissionDescription", ""),
                                         "queue": list(FakeKaggle.scoring or ["PENDING", "COMPLETE"]), **body})
            reply = {"message": "Successfully submitted", "ref": ref}
        elif call == "ListSubmissions":
            listed = []
            for item in FakeKaggle.submitted[::-1]:
                status = item["queue"].pop(0) if len(item["queue"]) > 1 else item["queue"][0]
                scores = {"publicScore": "0.91234", "privateScore": "0.90012"} if status == "COMPLETE" else {}
                error = {"errorDescription": "Submission CSV has 5 rows too few"} if status == "ERROR" else {}
                listed.append({"ref": item["ref"], "fileName": "submission.csv", "date": "2026-12-01T10:00:00.000Z",
                               "description": item["description"], "status": status, **scores, **error})
            reply = {"submissions": listed}
        else:
            reply = {}
        self.reply(json.dumps(reply).encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def flops_cache(tmp_path_factory):
    """One FLOP-count cache for the module's commands, as a user's machine keeps one."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def kaggle_api(tmp_path, flops_cache):
    for name in ("received", "submitted", "scoring"):
        setattr(FakeKaggle, name, [])
    for name in ("replies", "statuses", "runs", "versions", "quota", "missing", "extra"):
        setattr(FakeKaggle, name, {})
    FakeKaggle.quota = {"quotaRefreshTime": "2026-12-05T00:00:00.000Z",  # a fresh week: 30 h left
                        "gpuQuota": {"timeUsed": "0s", "totalTimeAllowed": "108000s"}}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKaggle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and k.lower() not in
           ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    (tmp_path / "config").mkdir()
    env.update(KAGGLE_API_ENVIRONMENT="LOCALHOST", HTTP_PROXY=f"http://127.0.0.1:{server.server_port}",
               KAGGLE_USERNAME="alice", KAGGLE_KEY="0123456789abcdef", HOME=str(tmp_path),
               KAGGLE_CONFIG_DIR=str(tmp_path / "config"), XDG_CACHE_HOME=str(flops_cache))
    yield env
    server.shutdown()


def command(env, name, *args, timeout=300):
    """``build_kernel.py NAME`` as alice, the record in $HOME/build, outputs in $HOME/runs."""
    home = Path(env["HOME"])
    extra = ["--runs", str(home / "runs")] if name in ("push", "fetch", "submit") else []
    return subprocess.run([sys.executable, str(ROOT / "build_kernel.py"), name, "--user", "alice",
                           "--out", str(home / "build"), *extra, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def push(env, *args):
    return command(env, "push", "--poll-seconds", "0.05", *args)


def _pushed() -> list[str]:
    return [body["slug"].split("/")[-1] for path, body in FakeKaggle.received if path.endswith("/SaveKernel")]


# one kernel of every kind the matrix makes: kernel sources, a later round, tuning, submission
KINDS = ["steelkit-r2-train-seg-fpn-effb3-dice-fold-0", "steelkit-r0-train-seg-fpn-effb3-fold-0",
         "steelkit-r0-tune-thresholds", "steelkit-r1-submission", "steelkit-r2-submission",
         "steelkit-r1-train-cls-effb1-fold-0"]


def test_kernels_of_every_kind_are_pushed_in_dependency_order_with_honest_metadata(kaggle_api):
    done = push(kaggle_api, "--over-quota", *KINDS)  # --over-quota: the fake's quota is empty
    assert done.returncode == 0, done.stdout + done.stderr
    order = _pushed()
    assert sorted(order) == sorted(KINDS)
    for kernel in CONFIG["kernels"]:
        for source in settings.dependencies(CONFIG, kernel):
            if kernel["slug"] in order and source["slug"] in order:
                assert order.index(source["slug"]) < order.index(kernel["slug"])
    for path, request in FakeKaggle.received:
        if not path.endswith("/SaveKernel"):
            continue  # the quota, asked before GPU kernels are pushed
        slug = request["slug"].split("/")[-1]
        meta = json.loads((Path(kaggle_api["HOME"]) / "build" / slug / "kernel-metadata.json").read_text())
        assert path == "http://localhost/api/v1/kernels.KernelsApiService/SaveKernel"
        assert request["slug"] == meta["id"] and request["newTitle"] == meta["title"]
        assert request.get("enableInternet") is False
        assert request["competitionDataSources"] == [paths.COMPETITION_SLUG]
        assert request.get("datasetDataSources", []) == meta["dataset_sources"]
        assert request.get("kernelDataSources", []) == meta["kernel_sources"]
        assert request.get("machineShape") == meta.get("machine_shape")
        nbformat.validate(nbformat.reads(request["text"], as_version=4))


def test_a_rejected_push_stops_with_the_kernel_named_and_the_cli_quoted(kaggle_api):
    FakeKaggle.replies[CHAIN[1]] = {"error": "Notebook title is already in use"}
    done = push(kaggle_api, *CHAIN)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"alice/{CHAIN[1]}: the push failed" in done.stderr
    assert "Kernel push error: Notebook title is already in use" in done.stderr
    assert CHAIN[2] not in _pushed()


def test_invalid_sources_are_a_failed_push(kaggle_api):
    FakeKaggle.replies[CHAIN[0]] = {"invalidDatasetSources": ["alice/steelkit-wheels"]}
    done = push(kaggle_api, CHAIN[0])
    assert done.returncode == 1
    assert "The following are not valid dataset sources" in done.stderr and "alice/steelkit-wheels" in done.stderr


def test_wait_pushes_dependents_only_after_their_sources_complete(kaggle_api):
    FakeKaggle.statuses[CHAIN[0]] = ["QUEUED", "RUNNING", "RUNNING", "COMPLETE"]
    done = push(kaggle_api, "--wait", *CHAIN)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = [(path.rsplit("/", 1)[1], body.get("kernelSlug") or body.get("slug", "").split("/")[-1])
             for path, body in FakeKaggle.received]
    polls = [i for i, call in enumerate(calls) if call == ("GetKernelSessionStatus", CHAIN[0])]
    assert len(polls) == 4 and calls.index(("SaveKernel", CHAIN[2])) > polls[-1]
    assert f"alice/{CHAIN[0]}: RUNNING" in done.stdout


def test_wait_stops_on_a_run_that_ends_in_error(kaggle_api):
    FakeKaggle.statuses[CHAIN[1]] = ["RUNNING", "ERROR"]
    done = push(kaggle_api, "--wait", *CHAIN)
    assert done.returncode == 1
    assert f"alice/{CHAIN[1]} ended in ERROR: CUDA out of memory" in done.stderr
    assert CHAIN[2] not in _pushed()


def test_gpu_kernels_the_weekly_quota_cannot_hold_are_refused(kaggle_api):
    FakeKaggle.quota = {"quotaRefreshTime": "2026-12-05T00:00:00.000Z",
                        "gpuQuota": {"timeUsed": "106200s", "totalTimeAllowed": "108000s"}}  # 0.5 h left
    done = push(kaggle_api, "steelkit-r0-train-seg-unet-effb3-fold-0")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "need about 1.1 GPU hours" in done.stderr and "0.5 h left" in done.stderr and "2026-12-05" in done.stderr
    assert _pushed() == []
    done = push(kaggle_api, "--over-quota", "steelkit-r0-train-seg-unet-effb3-fold-0")
    assert done.returncode == 0 and _pushed() == ["steelkit-r0-train-seg-unet-effb3-fold-0"]


CHAIN = ["steelkit-r0-train-cls-effb1-fold-0", "steelkit-r0-train-seg-fpn-effb3-fold-3", "steelkit-r0-tune-thresholds"]


def _record(env) -> dict:
    return json.loads((Path(env["HOME"]) / "build" / "campaign.json").read_text())["kernels"]


def _polls(slug: str) -> list[int]:
    return [i for i, (path, body) in enumerate(FakeKaggle.received)
            if path.endswith("/GetKernelSessionStatus") and body["kernelSlug"] == slug]


def _push_index(slug: str) -> int:
    return next(i for i, (path, body) in enumerate(FakeKaggle.received)
                if path.endswith("/SaveKernel") and body["slug"].endswith("/" + slug))


def test_dependents_wait_for_the_new_version_not_the_previous_complete(kaggle_api):
    first = CHAIN[0]
    FakeKaggle.statuses[first] = ["COMPLETE"]  # a version pushed before, long done
    FakeKaggle.runs[first] = ["COMPLETE", "COMPLETE", "QUEUED", "RUNNING", "COMPLETE"]  # stale, then the new run
    done = push(kaggle_api, "--wait", *CHAIN)
    assert done.returncode == 0, done.stdout + done.stderr
    polls = _polls(first)
    assert len(polls) == 5 and _push_index(CHAIN[1]) > polls[-1] and _push_index(CHAIN[2]) > polls[-1]
    assert "may be the previous version's: waiting to see version 1 queued or running" in done.stdout
    record = _record(kaggle_api)
    assert [record[s]["version"] for s in CHAIN] == [1, 1, 1]
    assert all(record[s]["status"] == "COMPLETE" and record[s]["seen_running"] for s in CHAIN)
    assert record[first]["run_seconds"] >= 0 and record[first]["started"] <= record[first]["ended"]


def test_a_complete_status_never_seen_running_is_said_not_guessed(kaggle_api):
    FakeKaggle.runs[CHAIN[0]] = ["COMPLETE"]
    done = push(kaggle_api, "--wait", "--stale-minutes", "0.002", *CHAIN)
    assert done.returncode == 1 and "the CLI cannot tell which version that status belongs to" in done.stderr
    assert _pushed() == [CHAIN[0]]
    assert f"push --confirm {CHAIN[0]}" in done.stderr
    confirmed = push(kaggle_api, "--wait", "--confirm", CHAIN[0], CHAIN[0])
    assert confirmed.returncode == 0 and _pushed() == [CHAIN[0]], confirmed.stdout + confirmed.stderr
    assert _record(kaggle_api)[CHAIN[0]]["status"] == "COMPLETE"


def test_an_interrupted_chain_resumes_without_pushing_a_complete_kernel_twice(kaggle_api, tmp_path):
    FakeKaggle.runs[CHAIN[1]] = ["RUNNING"]  # the segmenter runs for ever: the laptop closes meanwhile
    home = Path(kaggle_api["HOME"])
    running = subprocess.Popen([sys.executable, str(ROOT / "build_kernel.py"), "push", "--user", "alice", "--out",
                                str(home / "build"), "--runs", str(home / "runs"), "--poll-seconds", "0.05",
                                "--wait", *CHAIN], env=kaggle_api, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        record = (home / "build" / "campaign.json")
        if record.is_file() and _record(kaggle_api).get(CHAIN[1], {}).get("status") == "RUNNING":
            break
        time.sleep(0.1)
    running.kill()
    running.wait()
    FakeKaggle.statuses[CHAIN[1]] = ["RUNNING", "COMPLETE"]  # the version pushed before the interruption ends
    FakeKaggle.runs[CHAIN[1]] = ["RUNNING", "COMPLETE"]  # and any later one does too
    done = push(kaggle_api, "--wait", *CHAIN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _pushed() == CHAIN, "nothing COMPLETE or running was pushed twice"
    assert f"alice/{CHAIN[0]}: version 1 is COMPLETE and unchanged: not pushed again" in done.stdout
    assert f"alice/{CHAIN[1]}: version 1 was pushed before (RUNNING): waiting for it" in done.stdout
    again = push(kaggle_api, "--wait", *CHAIN)
    assert again.returncode == 0 and _pushed() == CHAIN, "a finished chain is not pushed again"

    raw = json.loads(settings.SETTINGS.read_text())  # the segmenter's source changes: it and its dependent go again
    next(g for g in raw["groups"] if g.get("presets") == ["seg-fpn-effb3"] and 3 in g["folds"])["parameters"][
        "OVERRIDES"] = ["epochs=2"]
    (tmp_path / "kernels.json").write_text(json.dumps(raw))
    changed = push(kaggle_api, "--wait", "--settings", str(tmp_path / "kernels.json"), *CHAIN)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert _pushed() == CHAIN + CHAIN[1:] and "(changed since version 1)" in changed.stdout
    assert "(a source was pushed again)" in changed.stdout and _record(kaggle_api)[CHAIN[2]]["version"] == 2
    forced = push(kaggle_api, "--wait", "--settings", str(tmp_path / "kernels.json"), "--force", CHAIN[0], CHAIN[0])
    assert forced.returncode == 0 and _pushed()[-1] == CHAIN[0] and "(forced)" in forced.stdout


def test_outputs_come_home_checked_and_a_missing_file_is_named(kaggle_api):
    done = push(kaggle_api, "--wait", CHAIN[1])
    assert done.returncode == 0, done.stdout + done.stderr
    run = Path(kaggle_api["HOME"]) / "runs" / CHAIN[1] / "seg-fpn-effb3-fold3"
    for name in ("recipe.json", "best.pt", "last.pt", "metrics.csv", "oof.npz"):
        assert (run / name).read_text() == f"{CHAIN[1]}/seg-fpn-effb3-fold3/{name}"
    assert _record(kaggle_api)[CHAIN[1]]["fetched"] == str(run.parent)
    FakeKaggle.missing[CHAIN[1]] = ["seg-fpn-effb3-fold3/oof.npz"]
    fetched = command(kaggle_api, "fetch", CHAIN[1])
    assert fetched.returncode == 1 and "Traceback" not in fetched.stderr
    assert "its output lacks seg-fpn-effb3-fold3/oof.npz" in fetched.stderr
    assert (run / "oof.npz").is_file(), "the earlier complete download is kept"


def test_submit_waits_for_the_score_and_writes_the_ledger_with_the_local_cv(kaggle_api):
    slug = "steelkit-r0-submission"
    never = command(kaggle_api, "submit", slug)
    assert never.returncode == 2 and "it was never pushed" in never.stderr and "Traceback" not in never.stderr
    FakeKaggle.extra[slug] = {"cv.json": json.dumps({"mean": 0.87654, "per_class": [0.9, 0.8, 0.85, 0.95],
                                                     "kind": "held-out", "in_sample_mean": 0.88123,
                                                     "seed_mean": 0.86, "images": 120})}
    FakeKaggle.runs[slug] = ["RUNNING"]
    running = push(kaggle_api, slug)
    assert running.returncode == 0
    refused = command(kaggle_api, "submit", slug)
    assert refused.returncode == 2 and "version 1 is PUSHED" in refused.stderr
    FakeKaggle.runs[slug] = ["RUNNING", "COMPLETE"]
    assert push(kaggle_api, "--wait", "--force", slug, slug).returncode == 0
    FakeKaggle.scoring = ["PENDING", "PENDING", "COMPLETE"]
    done = command(kaggle_api, "submit", slug, "--poll-seconds", "0.05")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submission 1000: public 0.91234, private 0.90012 (local CV 0.87654)" in done.stdout
    sent = FakeKaggle.submitted[0]
    assert sent["kernelSlug"] == slug and sent["kernelVersion"] == 2
    assert sent["competitionName"] == paths.COMPETITION_SLUG
    assert sent["description"] == (f"steelkit {slug} v2: 3 x cls-effb1, cls-r34, seg-unet-effb3, "
                                   "3 x seg-fpn-effb3-dice, 2 x seg-fpn-effb3; local CV 0.87654")
    ledger = pd.read_csv(Path(kaggle_api["HOME"]) / "build" / "submissions.csv", dtype=str, keep_default_na=False)
    row = ledger.iloc[0]
    assert (row["ref"], row["version"], row["status"], row["public"], row["private"], row["cv"]) == \
        ("1000", "2", "COMPLETE", "0.91234", "0.90012", "0.87654")
    assert row["cv_class_2"] == "0.80000" and "seg-unet-effb3/fold0" in row["members"]
    assert (row["cv_kind"], row["cv_in_sample"], row["cv_seed"]) == ("held-out", "0.88123", "0.86000")

    FakeKaggle.scoring = ["PENDING", "ERROR"]
    failed = command(kaggle_api, "submit", slug, "-m", "second try", "--poll-seconds", "0.05")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "ended in ERROR: Submission CSV has 5 rows too few" in failed.stderr
    status = command(kaggle_api, "status")
    assert status.returncode == 0, status.stderr
    assert "0.87654" in status.stdout and "0.91234" in status.stdout and "ERROR: Submission CSV" in status.stdout
    assert f"{slug:<46} COMPLETE" in status.stdout
    page = (Path(kaggle_api["HOME"]) / "build" / "campaign.html").read_text()
    assert "Local CV against the leaderboard" in page and "0.91234" in page and "0.87654" in page


def test_a_changed_csv_format_is_an_error_not_a_wrong_score_or_quota(monkeypatch):
    from steelkit_kaggle import kaggle_cli

    header = ",".join(kaggle_cli.SUBMISSIONS_HEADER)
    monkeypatch.setattr(kaggle_cli, "run", lambda args, timeout=0: (0, f"{header}\n7,submission.csv,2026-12-01,m,"
                                                                      "SubmissionStatus.COMPLETE,0.9,0.8"))
    assert kaggle_cli.submissions("c")[0] == {"ref": "7", "fileName": "submission.csv", "date": "2026-12-01",
                                              "description": "m", "status": "COMPLETE", "publicScore": "0.9",
                                              "privateScore": "0.8"}
    monkeypatch.setattr(kaggle_cli, "run", lambda args, timeout=0: (0, "ref,date,score\n7,2026-12-01,0.9"))
    with pytest.raises(kaggle_cli.KaggleError, match="its format changed"):
        kaggle_cli.submissions("c")
    monkeypatch.setenv("KAGGLE_KEY", "0123")
    monkeypatch.setattr(kaggle_cli, "run", lambda args, timeout=0: (
        0, "resource,used,remaining,total,refreshAt\nGPU,20.5h,9.5h,30h,2026-12-05"))
    assert kaggle_cli.quota() == {"used": 20.5, "remaining": 9.5, "total": 30.0, "refresh": "2026-12-05"}
    monkeypatch.setattr(kaggle_cli, "run", lambda args, timeout=0: (0, "resource,left,refreshAt\nGPU,9.5h,2026-12-05"))
    with pytest.raises(kaggle_cli.KaggleError, match="its format changed"):
        kaggle_cli.quota()


def test_a_stopped_training_run_is_not_done_and_nothing_starts_on_it(kaggle_api):
    stopped = {"finished": False, "epochs_done": 20, "epochs": 30,
               "stopped": "cls-effb1 fold 0: stopped before epoch 21 of 30 (12.0 min of the 11.50 h time limit left)"}
    FakeKaggle.extra[CHAIN[0]] = {"cls-effb1-fold0/run.json": json.dumps(stopped)}
    done = push(kaggle_api, "--wait", *CHAIN)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert f"alice/{CHAIN[0]}: its run reached epoch 20 of 30 and stopped (cls-effb1 fold 0: stopped before" \
        in done.stderr and "nothing that attaches it starts on an unfinished model" in done.stderr
    assert _pushed() == [CHAIN[0]], "its dependents (and what came after it) were not pushed"
    assert _record(kaggle_api)[CHAIN[0]]["unfinished"].startswith("its run reached epoch 20 of 30")
    again = push(kaggle_api, "--wait", *CHAIN)
    assert again.returncode == 1 and _pushed() == [CHAIN[0]] and "reached epoch 20 of 30" in again.stderr
    status = command(kaggle_api, "status")
    assert f"{CHAIN[0]:<46} STOPPED" in status.stdout and "reached epoch 20 of 30" in status.stdout
    fetched = command(kaggle_api, "fetch", CHAIN[0])
    assert fetched.returncode == 1 and "reached epoch 20 of 30" in fetched.stderr
    FakeKaggle.extra[CHAIN[0]] = {}  # given more time, the forced run finishes: the chain goes on
    forced = push(kaggle_api, "--wait", "--force", CHAIN[0], *CHAIN)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert _pushed() == [CHAIN[0], *CHAIN] and "unfinished" not in _record(kaggle_api)[CHAIN[0]]


def test_the_rehearsal_goes_to_kaggle_as_cpu_kernels_of_their_own_on_a_subset_of_the_images(kaggle_api):
    done = push(kaggle_api, "--rehearsal", "steelkit-r0-train-cls-effb1-fold-0",
                "steelkit-r0-train-seg-unet-effb3-fold-0", "rehearse-r0-train-seg-unet-effb3-fold-0-part-2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _pushed() == ["rehearse-r0-train-cls-effb1-fold-0", "rehearse-r0-train-seg-unet-effb3-fold-0",
                         "rehearse-r0-train-seg-unet-effb3-fold-0-part-2"]
    assert not any(path.endswith("GetAcceleratorQuotaStatistics") for path, _ in FakeKaggle.received), \
        "no GPU hours: the quota is not asked"
    for path, request in FakeKaggle.received:
        if path.endswith("/SaveKernel"):
            assert request.get("enableGpu") is False and request.get("machineShape") is None
            assert request.get("datasetDataSources") == ["alice/steelkit-wheels"]
            assert "train_images=400" in request["text"] and "'encoder=efficientnet-b0'" in request["text"]
    plan_text = command(kaggle_api, "plan", "--rehearsal")
    assert plan_text.returncode == 0 and "total: 0.0 GPU hours for 40 kernels" in plan_text.stdout
