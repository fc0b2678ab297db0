"""Inputs found by their contents, wherever Kaggle mounts them."""

import pytest

from steelkit import paths


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.INPUT_ENV, str(tmp_path))
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    return tmp_path


def _competition(folder):
    (folder / "test_images").mkdir(parents=True)
    (folder / "sample_submission.csv").write_text("ImageId,EncodedPixels,ClassId\n")
    return folder


@pytest.mark.parametrize("layout", ["slug", "owner"])
def test_datasets_notebooks_and_data_are_found_in_either_layout(inputs, layout):
    where = (lambda kind, slug: inputs / slug) if layout == "slug" else \
        (lambda kind, slug: inputs / kind / "bob" / slug)
    wheels = where("datasets", "steelkit-wheels")
    wheels.mkdir(parents=True)
    (wheels / "x-1.0-py3-none-any.whl").write_bytes(b"")
    weights = where("datasets", "steelkit-encoder-weights")
    weights.mkdir(parents=True)
    (weights / "resnet34.safetensors").write_bytes(b"")
    data = _competition(inputs / paths.COMPETITION_SLUG if layout == "slug" else inputs / "competitions" / "x" / "y")
    assert paths.find_data_dir() == data
    assert paths.resolve_input("steelkit-encoder-weights/resnet34.safetensors") == weights / "resnet34.safetensors"
    assert paths.wheel_dirs() == [wheels]


def test_kaggle_models_mount_deeper_and_are_searched_whole(inputs):
    version = inputs / "steelkit" / "pyTorch" / "v1" / "2" / "seg-tiny"
    version.mkdir(parents=True)
    (version / "best.pt").write_bytes(b"")
    assert paths.resolve_input("steelkit") == inputs / "steelkit"
    assert list(paths.resolve_input("steelkit").rglob("best.pt")) == [version / "best.pt"]


def test_a_missing_input_names_what_was_looked_for_and_what_is_there(inputs):
    (inputs / "datasets" / "bob" / "something-else").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"'steelkit-wheels' is not attached.*datasets/bob/something-else/"):
        paths.find_input("steelkit-wheels")
    with pytest.raises(FileNotFoundError, match="no competition data found.*datasets/bob/"):
        paths.find_data_dir()
