"""The rehearsal as Kaggle runs a notebook: in .venv-kaggle (Kaggle's packages, without those it lacks),
offline, with the wheels dataset attached or not, in either input layout."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from steelkit import checkpoint, paths, submission
from steelkit_kaggle import image, notebooks, rehearsal, settings, staging
from tests.test_kaggle_staging import local_wheels  # noqa: F401 (a fixture)

CONFIG = settings.load()


@pytest.fixture(scope="module", autouse=True)
def kaggle_venv():
    assert image.is_current(), (f"{image.VENV} is missing or older than {image.RECORD}: `make test` builds it "
                                "(python -c 'from steelkit_kaggle import image; image.ensure()')")


@pytest.fixture
def wheels_dataset(local_wheels, tmp_path):  # noqa: F811
    return staging.stage_wheels(tmp_path / "staged-wheels", "alice", find_links=local_wheels)[0].parent


def _kernel(slug: str, **parameters) -> dict:
    kernel = settings.find(CONFIG, slug)
    return {**kernel, "parameters": {**kernel["parameters"], **parameters}}


def _outputs(notebook: Path) -> str:
    return json.dumps(nbformat.read(notebook, 4).cells)


def test_a_training_notebook_installs_the_attached_wheels_trains_on_two_processes_and_leaves_the_image_alone(
        mini, wheels_dataset, tmp_path):
    inputs = tmp_path / "input"
    inputs.mkdir()
    (inputs / paths.COMPETITION_SLUG).symlink_to(mini)
    rehearsal.attach(inputs, "steelkit-wheels", wheels_dataset, layout="owner", owner="alice")  # the new layout
    kernel = _kernel("steelkit-r0-train-seg-unet-effb3-fold-0", PRESET="seg-tiny", ENCODER_WEIGHTS="",
                     OVERRIDES=["epochs=1", "n_folds=3", "batch_size=4",
                                                                  "effective_batch=8"], GPUS=2, DEVICE="cpu")
    printed = []
    result = rehearsal.run(notebooks.build(kernel, CONFIG, "alice", tmp_path / "build"), inputs,
                           progress=printed.append)
    assert "seg-tiny fold 0 epoch 1/1: train loss" in "".join(printed), "the run's progress, as it came"
    assert "Writing /tmp/steelkit-src" not in "".join(printed)
    out = result["working"] / "seg-tiny-fold0"
    assert checkpoint.load_state(out / "last.pt")["world_size"] == 2, "the notebook launched torchrun"
    assert {"recipe.json", "best.pt", "metrics.csv", "oof.npz"} <= {p.name for p in out.iterdir()}
    outputs = _outputs(result["notebook"])
    assert "segmentation-models-pytorch: installed from" in outputs and "datasets/alice/steelkit-wheels" in outputs
    assert "albucore: on the image" in outputs
    assert "image/png" in outputs and (out / "curves.png").is_file(), "the curves shown inline"
    assert not image.importable("segmentation_models_pytorch"), "a rehearsal's installs must not persist"
    assert not image.importable("iterstrat")


def test_without_the_wheels_the_notebook_fails_naming_the_missing_packages(mini, tmp_path):
    inputs = tmp_path / "input"
    inputs.mkdir()
    (inputs / paths.COMPETITION_SLUG).symlink_to(mini)
    kernel = _kernel("steelkit-r0-train-cls-effb1-fold-0", PRESET="cls-tiny", ENCODER_WEIGHTS="")
    folder = notebooks.build(kernel, CONFIG, "alice", tmp_path / "build")
    with pytest.raises(CellExecutionError) as info:
        rehearsal.run(folder, inputs)
    message = str(info.value)
    assert "segmentation-models-pytorch, iterative-stratification not on this image" in message
    assert "build_kernel.py stage-wheels" in message


def test_the_submission_notebook_runs_offline_where_steelkit_is_not_installed(mini, trained, wheels_dataset,
                                                                             tmp_path):
    inputs = tmp_path / "input"
    inputs.mkdir()
    (inputs / paths.COMPETITION_SLUG).symlink_to(mini)
    shutil.copytree(trained, inputs / "models")
    rehearsal.attach(inputs, "steelkit-wheels", wheels_dataset)
    kernel = _kernel("steelkit-r0-submission", MODELS=["models"], TTA=["none", "hflip"], PSEUDO_ROUND=1,
                     PICTURES=2, INFERENCE_CONFIG="")
    folder = notebooks.build(kernel, CONFIG, "alice", tmp_path / "build", echo=lambda line: None)
    assert subprocess.run([str(image.python()), "-c", "import steelkit"], cwd=tmp_path).returncode != 0
    result = rehearsal.run(folder, inputs)
    working = result["working"]
    assert submission.validate(working / "submission.csv", mini / "sample_submission.csv", (64, 320)) == 32
    assert (working / "pseudo.csv").is_file() and (working / "thresholds.png").is_file()
    outputs = _outputs(result["notebook"])
    assert "/tmp/steelkit-src/steelkit/__init__.py" in outputs, "steelkit came from the notebook"
    assert "threshold search on" in outputs and "image/png" in outputs, "the search figure shown inline"


def test_a_download_attempt_fails_the_rehearsal(tmp_path):
    source = tmp_path / "planted.py"
    source.write_text('# %% tags=["parameters"]\nURL = "http://example.com/weights.pth"\n\n'
                      '# %%\nimport torch\ntorch.hub.load_state_dict_from_url(URL)\n')
    kernel = {"title": "steelkit planted download", "slug": "steelkit-planted-download", "source": str(source),
              "gpu": False}
    folder = notebooks.build(kernel, CONFIG, "alice", tmp_path / "build")
    (tmp_path / "input").mkdir()
    with pytest.raises(CellExecutionError, match="network access blocked"):
        rehearsal.run(folder, tmp_path / "input")


def test_build_kernel_run_names_a_bad_kernel_without_a_traceback(tmp_path):
    done = subprocess.run([sys.executable, str(notebooks.ROOT / "build_kernel.py"), "run", "nope", "--input",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no kernel 'nope' in kernels/kernels.json" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_tuning_notebook_writes_the_ensembles_inference_config_and_local_cv(mini, trained, wheels_dataset,
                                                                                  tmp_path):
    from steelkit.predict import InferenceConfig

    inputs = tmp_path / "input"
    inputs.mkdir()
    (inputs / paths.COMPETITION_SLUG).symlink_to(mini)
    rehearsal.attach(inputs, "steelkit-wheels", wheels_dataset, "slug", "datasets", "alice")
    rehearsal.attach(inputs, "steelkit-r0-train-models", trained, "slug", "notebooks", "alice")
    kernel = _kernel("steelkit-r0-tune-thresholds", TTA=["none", "hflip"], BATCH_SIZE=4)
    printed = []
    result = rehearsal.run(notebooks.build(kernel, CONFIG, "alice", tmp_path / "build"), inputs,
                           progress=printed.append)
    working = result["working"]
    assert "1 classifiers, 1 segmenters" in "".join(printed)
    assert "local CV (held-out, 8 images, 5 part(s))" in "".join(printed)
    config = InferenceConfig.load(working / "inference.json")
    assert config.tta == ("none", "hflip")
    cv = json.loads((working / "cv.json").read_text())
    assert 0 <= cv["mean"] <= 1 and cv["images"] == 8
    assert (working / "thresholds.png").is_file() and (working / "ensemble" / "oof.npz").is_file()
    assert set(settings.outputs(settings.find(CONFIG, "steelkit-r0-tune-thresholds"))) <= \
        {p.name for p in working.iterdir()}

    # the submission given that inference.json and another TTA: the tuning's TTA is used, and said so
    rehearsal.attach(inputs, "steelkit-r0-tune-thresholds", working, "slug", "notebooks", "alice")
    kernel = _kernel("steelkit-r0-submission", MODELS=["steelkit-r0-train-models"], TTA=["none"], BATCH_SIZE=2,
                     PSEUDO_ROUND=0, PICTURES=0)
    printed.clear()
    submitted = rehearsal.run(notebooks.build(kernel, CONFIG, "alice", tmp_path / "build", echo=lambda line: None),
                              inputs, progress=printed.append)
    said = "".join(printed)
    assert "TTA ['none', 'hflip'] from steelkit-r0-tune-thresholds/inference.json (the thresholds were tuned on " \
           "it), not this notebook's TTA ['none']" in said
    used = InferenceConfig.load(submitted["working"] / "submission.inference.json")
    assert used.tta == ("none", "hflip") and used.batch_size == 2 and used.postprocess == config.postprocess
    assert "local CV (held-out out-of-fold mean Dice of this ensemble)" in said
