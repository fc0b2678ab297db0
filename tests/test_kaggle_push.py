"""Pushing with the real kaggle CLI against a fake Kaggle API on loopback: what the CLI prints is believed,
its exit status is not."""

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from steelkit import paths
from steelkit_kaggle import settings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = settings.load()


class FakeKaggle(http.server.BaseHTTPRequestHandler):
    """Kaggle's API as far as `kaggle kernels push` and `kaggle kernels status` need it; requests arrive
    through it as a proxy. ``replies`` (slug -> push reply fields) and ``statuses`` (slug -> statuses to
    hand out in turn) say how it answers."""

    received: list = []
    replies: dict = {}
    quota: dict = {}
    statuses: dict = {}

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        FakeKaggle.received.append((self.path, body))
        if self.path.endswith("/SaveKernel"):
            slug = body["slug"].split("/")[-1]
            reply = {"ref": f"/code/{body['slug']}", "url": f"http://localhost/code/{body['slug']}",
                     "versionNumber": 1, "error": "", **FakeKaggle.replies.get(slug, {})}
        elif self.path.endswith("/GetAcceleratorQuotaStatistics"):
            reply = FakeKaggle.quota
        elif self.path.endswith("/GetKernelSessionStatus"):
            queue = FakeKaggle.statuses.get(body["kernelSlug"], ["COMPLETE"])
            status = queue.pop(0) if len(queue) > 1 else queue[0]
            reply = {"status": status, "failureMessage": "CUDA out of memory" if status == "ERROR" else ""}
        else:
            reply = {}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def kaggle_api(tmp_path):
    FakeKaggle.received, FakeKaggle.replies, FakeKaggle.statuses, FakeKaggle.quota = [], {}, {}, {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKaggle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and k.lower() not in
           ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    (tmp_path / "config").mkdir()
    env.update(KAGGLE_API_ENVIRONMENT="LOCALHOST", HTTP_PROXY=f"http://127.0.0.1:{server.server_port}",
               KAGGLE_USERNAME="alice", KAGGLE_KEY="0123456789abcdef", HOME=str(tmp_path),
               KAGGLE_CONFIG_DIR=str(tmp_path / "config"))
    yield env
    server.shutdown()


def push(env, *args):
    return subprocess.run([sys.executable, str(ROOT / "build_kernel.py"), "push", "--user", "alice",
                           "--out", str(Path(env["HOME"]) / "build"), "--poll-seconds", "0.05", *args],
                          env=env, capture_output=True, text=True, timeout=300)


def _pushed() -> list[str]:
    return [body["slug"].split("/")[-1] for path, body in FakeKaggle.received if path.endswith("/SaveKernel")]


def test_every_kernel_is_pushed_in_dependency_order_with_honest_metadata(kaggle_api):
    done = push(kaggle_api)
    assert done.returncode == 0, done.stdout + done.stderr
    order = _pushed()
    assert sorted(order) == sorted(k["slug"] for k in CONFIG["kernels"])
    for kernel in CONFIG["kernels"]:
        for source in settings.dependencies(CONFIG, kernel):
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
    FakeKaggle.replies["steelkit-demo-train-segmenter"] = {"error": "Notebook title is already in use"}
    done = push(kaggle_api, "steelkit-demo-train-classifier", "steelkit-demo-train-segmenter",
                "steelkit-demo-submission")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "alice/steelkit-demo-train-segmenter: the push failed" in done.stderr
    assert "Kernel push error: Notebook title is already in use" in done.stderr
    assert "steelkit-demo-submission" not in _pushed()


def test_invalid_sources_are_a_failed_push(kaggle_api):
    FakeKaggle.replies["steelkit-demo-train-classifier"] = {"invalidDatasetSources": ["alice/steelkit-wheels"]}
    done = push(kaggle_api, "steelkit-demo-train-classifier")
    assert done.returncode == 1
    assert "The following are not valid dataset sources" in done.stderr and "alice/steelkit-wheels" in done.stderr


def test_wait_pushes_dependents_only_after_their_sources_complete(kaggle_api):
    FakeKaggle.statuses["steelkit-demo-train-classifier"] = ["QUEUED", "RUNNING", "RUNNING", "COMPLETE"]
    done = push(kaggle_api, "--wait", "steelkit-demo-train-classifier", "steelkit-demo-train-segmenter",
                "steelkit-demo-submission")
    assert done.returncode == 0, done.stdout + done.stderr
    calls = [(path.rsplit("/", 1)[1], body.get("kernelSlug") or body.get("slug", "").split("/")[-1])
             for path, body in FakeKaggle.received]
    polls = [i for i, call in enumerate(calls) if call == ("GetKernelSessionStatus", "steelkit-demo-train-classifier")]
    assert len(polls) == 4 and calls.index(("SaveKernel", "steelkit-demo-submission")) > polls[-1]
    assert "alice/steelkit-demo-train-classifier: RUNNING" in done.stdout


def test_wait_stops_on_a_run_that_ends_in_error(kaggle_api):
    FakeKaggle.statuses["steelkit-demo-train-segmenter"] = ["RUNNING", "ERROR"]
    done = push(kaggle_api, "--wait", "steelkit-demo-train-classifier", "steelkit-demo-train-segmenter",
                "steelkit-demo-submission")
    assert done.returncode == 1
    assert "alice/steelkit-demo-train-segmenter ended in ERROR: CUDA out of memory" in done.stderr
    assert "steelkit-demo-submission" not in _pushed()


def test_gpu_kernels_the_weekly_quota_cannot_hold_are_refused(kaggle_api):
    FakeKaggle.quota = {"quotaRefreshTime": "2026-12-05T00:00:00.000Z",
                        "gpuQuota": {"timeUsed": "106200s", "totalTimeAllowed": "108000s"}}  # 0.5 h left
    done = push(kaggle_api, "steelkit-r0-train-seg-unet-effb3-fold-0")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "need about 1.1 GPU hours" in done.stderr and "0.5 h left" in done.stderr and "2026-12-05" in done.stderr
    assert _pushed() == []
    done = push(kaggle_api, "--over-quota", "steelkit-r0-train-seg-unet-effb3-fold-0")
    assert done.returncode == 0 and _pushed() == ["steelkit-r0-train-seg-unet-effb3-fold-0"]
