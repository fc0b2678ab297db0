"""The datasets the kernels attach, made by the tool, offline: wheels from a local folder, encoder weights
from a hub cache the test builds itself, trained models (and a Kaggle Models instance)."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import timm
import torch
from safetensors.torch import save_file

from steelkit.models import build_model
from steelkit.recipe import override, preset
from steelkit_kaggle import staging
from tests.wheels import repack

ROOT = Path(__file__).resolve().parents[1]


def build_kernel(*args, env=None):
    return subprocess.run([sys.executable, str(ROOT / "build_kernel.py"), *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


@pytest.fixture(scope="session")
def local_wheels(tmp_path_factory):
    """Wheels of what Kaggle's image lacks, packed from this environment: no index needed."""
    out = tmp_path_factory.mktemp("wheels")
    repack("segmentation_models_pytorch", out)
    repack("iterative-stratification", out)
    return out


def test_stage_wheels_from_a_local_folder_at_the_pinned_versions(local_wheels, tmp_path):
    done = build_kernel("stage-wheels", tmp_path / "ds", "--find-links", local_wheels, "--user", "alice")
    assert done.returncode == 0, done.stderr
    pinned = staging.pins()
    assert sorted(p.name for p in (tmp_path / "ds").glob("*.whl")) == [
        f"iterative_stratification-{pinned['iterative-stratification']}-py3-none-any.whl",
        f"segmentation_models_pytorch-{pinned['segmentation-models-pytorch']}-py3-none-any.whl"]
    assert json.loads((tmp_path / "ds" / "dataset-metadata.json").read_text())["id"] == "alice/steelkit-wheels"
    for wheel in (tmp_path / "ds").glob("*.whl"):
        assert zipfile.ZipFile(wheel).testzip() is None


def test_stage_wheels_names_what_it_cannot_find(tmp_path):
    (tmp_path / "empty").mkdir()
    done = build_kernel("stage-wheels", tmp_path / "ds", "--find-links", tmp_path / "empty")
    assert done.returncode == 2 and "could not stage wheels segmentation-models-pytorch==" in done.stderr
    assert "Traceback" not in done.stderr


def _hub_file(cache: Path, repo: str, revision: str, tensors: dict) -> None:
    """One hub repo in huggingface_hub's cache layout: refs/main -> snapshots/<commit>/{config,model}."""
    commit = revision if len(revision) == 40 else "0123456789abcdef0123456789abcdef01234567"
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(snapshot / "model.safetensors"))


def test_stage_encoder_weights_from_the_hub_cache_and_load_them_back_exactly(tmp_path):
    cache = tmp_path / "hub"
    torch.manual_seed(0)
    resnet = {k: v for k, v in smp.encoders.get_encoder("resnet18", weights=None).state_dict().items()}
    repo, revision = staging.encoder_source("resnet18")
    assert repo == "smp-hub/resnet18.imagenet"
    _hub_file(cache, repo, revision, resnet)
    mobilenet = timm.create_model("mobilenetv3_small_050").state_dict()
    _hub_file(cache, "timm/mobilenetv3_small_050.lamb_in1k", "main", mobilenet)

    out = tmp_path / "weights"
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf-home")}
    code = ("import sys; from pathlib import Path; from steelkit_kaggle import staging; "
            "staging.stage_encoder_weights(Path(sys.argv[1]), 'alice', ['resnet18', 'tu-mobilenetv3_small_050'])")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["file"] for m in manifest] == ["resnet18.safetensors", "tu-mobilenetv3_small_050.safetensors"]
    assert manifest[0]["repo"] == "smp-hub/resnet18.imagenet" and manifest[0]["revision"] == revision
    assert all(len(m["sha256"]) == 64 for m in manifest)
    assert json.loads((out / "dataset-metadata.json").read_text())["id"] == "alice/steelkit-encoder-weights"

    classifier = build_model(override(preset("cls-tiny"), [f"encoder_weights={out / 'resnet18.safetensors'}"]))
    for key, value in resnet.items():
        torch.testing.assert_close(classifier.encoder.state_dict()[key], value, rtol=0, atol=0, msg=key)
    segmenter = build_model(override(preset("seg-tiny"),
                                     [f"encoder_weights={out / 'tu-mobilenetv3_small_050.safetensors'}"]))
    for key, value in segmenter.encoder.state_dict().items():
        torch.testing.assert_close(value, mobilenet[key.removeprefix("model.")], rtol=0, atol=0, msg=key)
    hub_snapshot = next((cache / "models--smp-hub--resnet18.imagenet" / "snapshots").iterdir())
    again = build_model(override(preset("cls-tiny"), [f"encoder_weights={hub_snapshot}"]))  # the hub's own layout
    torch.testing.assert_close(again.encoder.state_dict()["conv1.weight"], resnet["conv1.weight"], rtol=0, atol=0)


def test_stage_encoder_weights_offline_without_a_cache_says_so(tmp_path):
    code = ("import sys; from pathlib import Path; from steelkit_kaggle import staging; "
            "staging.stage_encoder_weights(Path(sys.argv[1]), 'alice', ['resnet18'])")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "w")], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "none"),
                               "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode != 0 and "cannot fetch smp-hub/resnet18.imagenet" in done.stderr
    assert "machine with internet access" in done.stderr


def test_stage_models_makes_a_dataset_folder_and_a_model_instance(tmp_path, trained):
    (tmp_path / "inference.json").write_text("{}")
    done = build_kernel("stage-models", tmp_path / "ds", "--from", trained / "cls-tiny", trained / "seg-tiny",
                        "--inference-config", tmp_path / "inference.json", "--user", "alice",
                        "--model-instance", "{user}/steelkit/pyTorch/demo")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "ds"
    assert sorted(p.name for p in (out / "seg-tiny").iterdir()) == ["best.pt", "metrics.csv", "oof.npz", "recipe.json"]
    assert (out / "inference.json").is_file()
    meta = json.loads((out / "dataset-metadata.json").read_text())
    assert meta["id"] == "alice/steelkit-models" and len(meta["licenses"]) == 1
    instance = json.loads((out / "model-instance-metadata.json").read_text())
    assert (instance["ownerSlug"], instance["modelSlug"], instance["instanceSlug"]) == ("alice", "steelkit", "demo")
    assert instance["framework"] == "pyTorch" and instance["licenseName"]
    done = build_kernel("stage-models", tmp_path / "ds2", "--from", tmp_path)
    assert done.returncode == 2 and "not a steelkit training output" in done.stderr
