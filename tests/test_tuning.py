"""The tuning kernel's work: an ensemble's out-of-fold maps averaged at full resolution, its own tables, the
search on them, and the local CV it reports."""

import json

import numpy as np
import pytest
import torch

from steelkit import checkpoint, thresholds, train, tuning
from steelkit.competition import decode_row, read_labels
from steelkit.ensemble import Ensemble
from steelkit.postprocess import PostprocessConfig, clean_mask
from steelkit.predict import InferenceConfig
from steelkit.recipe import override, preset
from tests.test_thresholds import brute_force_search, grid_index, speckly_set


def test_the_search_reports_the_cv_it_would_score_at_its_chosen_settings(tmp_path):
    probs, truth, cls = speckly_set(tmp_path, n=20)
    result = thresholds.search([tmp_path / "cls"], [tmp_path / "seg"], tmp_path / "data")

    def direct(config: PostprocessConfig) -> float:  # the Kaggle mean Dice over (image, class) pairs
        scaled = config.for_shape(probs.shape[-2:])
        dice = []
        for i in range(len(probs)):
            for k in range(4):
                mask = clean_mask(probs[i, k], scaled.pixel_thresholds[k], scaled.min_component_px[k],
                                  scaled.min_total_px[k]).astype(bool) & (cls[i, k] >= config.label_thresholds[k])
                both = mask.sum() + truth[i, k].sum()
                dice.append(1.0 if both == 0 else 2 * (mask & truth[i, k].astype(bool)).sum() / both)
        return float(np.mean(dice))

    assert result["cv"]["in_sample_mean"] == pytest.approx(direct(result["config"]), abs=1e-9)
    assert result["cv"]["seed_mean"] == pytest.approx(direct(PostprocessConfig()), abs=1e-9)
    assert "local CV" in thresholds.format_report(result)


@pytest.fixture(scope="module")
def two_segmenters(mini, trained, tmp_path_factory):
    """The session's tiny segmenter and a second one on the same fold (another seed): an ensemble whose
    members hold out the same images."""
    other = tmp_path_factory.mktemp("other") / "seg-tiny-seed-1"
    train.train(override(preset("seg-tiny"), ["epochs=1", "n_folds=3", "seed=1"]), mini, other, device="cpu")
    return [trained / "seg-tiny", other]


def test_the_ensemble_tuning_equals_a_brute_force_search_on_the_averaged_maps(mini, trained, two_segmenters,
                                                                               tmp_path):
    config = InferenceConfig(tta=("none", "hflip"), batch_size=4)
    result = tuning.tune([trained / "cls-tiny"], two_segmenters, mini, tmp_path, config, splits=1, device="cpu",
                         show=False)
    ids = np.load(trained / "seg-tiny" / "oof.npz")["image_ids"].tolist()
    assert result["images"] == len(ids) and result["full_resolution"] == len(ids)  # no image on the 1/4 maps

    table = read_labels(mini / "train.csv", mini / "train_images").set_index("ImageId")
    images = np.stack([_image(mini / "train_images" / i) for i in ids])
    ensemble = Ensemble([d / checkpoint.BEST for d in two_segmenters], [torch.device("cpu")], "segmenter")
    probs = ensemble(torch.from_numpy(images), config.tta, amp=False).numpy()
    truth = np.stack([decode_row(tuple(table.loc[i, [f"rle_{k}" for k in range(1, 5)]]), probs.shape[-2:])
                      for i in ids])
    gate = Ensemble([trained / "cls-tiny" / checkpoint.BEST], [torch.device("cpu")], "classifier")
    cls = gate(torch.from_numpy(images), config.tta, amp=False).numpy()  # the submission's TTA-averaged gate
    written_gate = np.load(tmp_path / tuning.CLASSIFIERS / "oof.npz")
    assert written_gate["image_ids"].tolist() == ids
    np.testing.assert_allclose(written_gate["cls_probs"], cls, atol=1e-6)
    training_oof = np.load(trained / "cls-tiny" / "oof.npz")["cls_probs"]
    assert not np.allclose(training_oof, cls, atol=1e-4), "not the training run's own, TTA-less probabilities"
    grids = thresholds.search_grids(PostprocessConfig())
    chosen = result["config"]
    for k, cube in enumerate(brute_force_search(probs, truth, cls, grids)):
        at = grid_index(grids, chosen, k)
        assert cube[at] == pytest.approx(cube.max(), abs=1e-6), f"class {k + 1}"
    written = InferenceConfig.load(tmp_path / "inference.json")
    assert written.postprocess == chosen and written.tta == config.tta
    cv = json.loads((tmp_path / "cv.json").read_text())
    assert cv["mean"] == pytest.approx(result["cv"]["mean"]) and cv["images"] == len(ids)


def _image(path):
    """(H, W, C) uint8 as decoded for the models."""
    from steelkit.competition import decode_image, grayscale_is_exact

    return decode_image(path, grayscale_is_exact([path]))
