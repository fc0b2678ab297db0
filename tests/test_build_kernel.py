"""The kernels as Kaggle gets them: built notebooks, offline execution, and a push through the real CLI."""

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

import build_kernel
from steelkit import paths, submission

SETTINGS = build_kernel.load_settings()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    return {k["slug"]: build_kernel.build(k, SETTINGS, "alice", out) for k in SETTINGS["kernels"]}


def test_every_kernel_builds_a_valid_notebook_with_honest_metadata(built):
    modules = sorted(p.name for p in build_kernel.PACKAGE.glob("*.py"))
    for slug, folder in built.items():
        notebook = nbformat.read(folder / f"{slug}.ipynb", as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata.kernelspec.name == "python3" and notebook.metadata.language_info.name == "python"
        tags = [c.metadata.get("tags", []) for c in notebook.cells]
        first_code = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code")
        assert "parameters" in tags[first_code], f"{slug}: the first code cell holds the parameters"
        written = [c.source.splitlines()[0].rsplit("/", 1)[1] for c in notebook.cells
                   if c.source.startswith("%%writefile")]
        assert written == modules, "every steelkit module inlined, as plain source"
        meta = json.loads((folder / "kernel-metadata.json").read_text())
        assert meta["id"] == f"alice/{slug}" and meta["code_file"] == f"{slug}.ipynb" and len(slug) >= 5
        assert meta["enable_internet"] is False and meta["language"] == "python"
        assert meta["kernel_type"] == "notebook" and isinstance(meta["enable_gpu"], bool)
        assert meta["competition_sources"] == [paths.COMPETITION_SLUG]
        assert all(s.startswith("alice/") for s in meta["dataset_sources"] + meta["kernel_sources"])


def test_one_source_builds_several_kernels_with_their_parameters(built):
    notebook = nbformat.read(built["steelkit-train-cls-effb1-fold-2"] / "steelkit-train-cls-effb1-fold-2.ipynb", 4)
    injected = [c.source for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "PRESET = 'cls-effb1'" in injected[0] and "FOLD = 2" in injected[0]


def test_datasets_metadata(tmp_path):
    for path in build_kernel.DATASETS_META.glob("*/dataset-metadata.json"):
        meta = json.loads(path.read_text())
        slug = meta["id"].split("/")[1]
        assert 6 <= len(slug) <= 50 and 6 <= len(meta["title"]) <= 50 and len(meta["licenses"]) == 1


def test_the_budget_says_plainly_when_an_ensemble_is_too_slow():
    from steelkit import budget, recipe

    small = budget.estimate([recipe.preset("seg-tiny")], 100, 1)
    huge = budget.estimate([recipe.preset("seg-tiny")] * 40, 5506, 3, tflops=0.5)
    assert not small.over_limit and "within" in str(small)
    assert huge.over_limit and "EXCEEDS the competition's 60-minute cap" in str(huge)


def _inputs(tmp_path, mini, trained):
    inputs = tmp_path / "input"
    inputs.mkdir()
    (inputs / paths.COMPETITION_SLUG).symlink_to(mini)
    shutil.copytree(trained, inputs / "models")
    return inputs


def test_the_submission_notebook_runs_offline_where_steelkit_is_not_installed(tmp_path, mini, trained):
    kernel = {"title": "steelkit test submission", "slug": "steelkit-test-submission", "source": "submission.py",
              "parameters": {"MODELS": ["models"], "TTA": ["none", "hflip"], "PSEUDO_ROUND": 1, "PICTURES": 2}}
    folder = build_kernel.build(kernel, SETTINGS, "alice", tmp_path / "build")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    assert subprocess.run([sys.executable, "-c", "import steelkit"], cwd=tmp_path, env=clean).returncode != 0
    result = build_kernel.run(folder, _inputs(tmp_path, mini, trained))
    working = result["working"]
    assert submission.validate(working / "submission.csv", mini / "sample_submission.csv", (64, 320)) == 32
    assert (working / "pseudo.csv").is_file()
    outputs = json.dumps(nbformat.read(result["notebook"], 4).cells)
    assert "/tmp/steelkit-src/steelkit/__init__.py" in outputs, "steelkit came from the notebook itself"


def test_a_download_attempt_fails_the_rehearsal(tmp_path, mini, trained):
    source = tmp_path / "planted.py"
    source.write_text('# %% tags=["parameters"]\nURL = "http://example.com/weights.pth"\n\n'
                      '# %%\nimport torch\ntorch.hub.load_state_dict_from_url(URL)\n')
    kernel = {"title": "steelkit planted download", "slug": "steelkit-planted-download", "source": str(source)}
    folder = build_kernel.build(kernel, SETTINGS, "alice", tmp_path / "build")
    with pytest.raises(CellExecutionError, match="network access blocked"):
        build_kernel.run(folder, _inputs(tmp_path, mini, trained))


class FakeKaggle(http.server.BaseHTTPRequestHandler):
    """Kaggle's API as far as `kaggle kernels push` needs it; requests arrive through it as a proxy."""

    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        FakeKaggle.received.append((self.path, json.loads(body or b"{}")))
        reply = json.dumps({"ref": "/code/alice/x", "url": "http://localhost/code/alice/x", "versionNumber": 1,
                            "error": ""}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def test_the_real_kaggle_cli_pushes_every_built_folder(built, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKaggle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and k.lower() not in
           ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    (tmp_path / "config").mkdir()
    env.update(KAGGLE_API_ENVIRONMENT="LOCALHOST", HTTP_PROXY=f"http://127.0.0.1:{server.server_port}",
               KAGGLE_USERNAME="alice", KAGGLE_KEY="0123456789abcdef", HOME=str(tmp_path),
               KAGGLE_CONFIG_DIR=str(tmp_path / "config"))
    kaggle = Path(sys.executable).with_name("kaggle")
    try:
        for folder in built.values():
            FakeKaggle.received.clear()
            done = subprocess.run([str(kaggle), "kernels", "push", "-p", str(folder)], env=env, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0 and "successfully pushed" in done.stdout, done.stdout + done.stderr
            path, request = FakeKaggle.received[-1]
            assert path == "http://localhost/api/v1/kernels.KernelsApiService/SaveKernel"
            meta = json.loads((folder / "kernel-metadata.json").read_text())
            assert request["slug"] == meta["id"] and request["newTitle"] == meta["title"]
            assert request.get("enableInternet") is False
            assert request["competitionDataSources"] == [paths.COMPETITION_SLUG]
            assert request.get("datasetDataSources", []) == meta["dataset_sources"]
            assert request.get("kernelDataSources", []) == meta["kernel_sources"]
            notebook = nbformat.reads(request["text"], as_version=4)
            nbformat.validate(notebook)
            assert notebook.metadata.kernelspec.name == "python3"
    finally:
        server.shutdown()


def test_stage_models_makes_a_dataset_folder(tmp_path, trained):
    (tmp_path / "inference.json").write_text("{}")
    out = build_kernel.stage_models(tmp_path / "ds", [trained / "cls-tiny", trained / "seg-tiny"], "alice",
                                    tmp_path / "inference.json")
    assert sorted(p.name for p in (out / "seg-tiny").iterdir()) == ["best.pt", "metrics.csv", "oof.npz", "recipe.json"]
    assert (out / "inference.json").is_file()
    meta = json.loads((out / "dataset-metadata.json").read_text())
    assert meta["id"] == "alice/steelkit-models" and len(meta["licenses"]) == 1
    with pytest.raises(FileNotFoundError, match="not a steelkit training output"):
        build_kernel.stage_models(tmp_path / "ds2", [tmp_path], "alice")
