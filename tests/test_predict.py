"""Prediction end to end on a tiny synthetic competition, with tiny models trained for one epoch."""

import shutil
import warnings

import pandas as pd
import pytest

from steelkit import ensemble, submission
from steelkit.competition import read_table
from steelkit.postprocess import PostprocessConfig
from steelkit.predict import InferenceConfig, predict


def test_predict_writes_a_valid_submission_and_pseudo_labels(mini, trained, tmp_path):
    config = InferenceConfig(num_workers=0, batch_size=3, pseudo_high=0.5, pseudo_low=0.5,
                             postprocess=PostprocessConfig(label_thresholds=(0.0,) * 4, pixel_thresholds=(0.3,) * 4))
    result = predict(mini, ensemble.find_checkpoints([trained / "cls-tiny"]),
                     ensemble.find_checkpoints([trained / "seg-tiny"]), tmp_path / "submission.csv", config,
                     pseudo_out=tmp_path / "pseudo.csv", pseudo_round=2, device="cpu")
    assert submission.validate(tmp_path / "submission.csv", mini / "sample_submission.csv", (64, 320)) == 32
    assert InferenceConfig.load(tmp_path / "submission.inference.json") == config
    pseudo = pd.read_csv(tmp_path / "pseudo.csv", keep_default_na=False)
    assert len(pseudo) == 4 * result["pseudo_images"] and set(pseudo["round"]) <= {2}
    assert all(m == "cls-tiny/best.pt;seg-tiny/best.pt" for m in pseudo["models"])


def test_an_unreadable_test_image_gets_empty_predictions_and_a_warning(mini, trained, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(mini, data)
    victim = sorted((data / "test_images").iterdir())[2]
    victim.write_bytes(b"\xff\xd8 truncated")
    config = InferenceConfig(num_workers=0, tta=("none",),
                             postprocess=PostprocessConfig(label_thresholds=(0.0,) * 4, pixel_thresholds=(0.0,) * 4,
                                                           min_component_px=(0,) * 4, min_total_px=(0,) * 4))
    with pytest.warns(UserWarning, match=victim.name):
        result = predict(data, [], ensemble.find_checkpoints([trained / "seg-tiny"]), tmp_path / "s.csv", config,
                         device="cpu")
    assert result["failed"] == [victim.name]
    table = read_table(tmp_path / "s.csv")[0].set_index("ImageId")
    assert (table.loc[victim.name] == "").all()
    assert (table.drop(index=victim.name) != "").all().all(), "pixel threshold 0: every other pair has a mask"
    submission.validate(tmp_path / "s.csv", data / "sample_submission.csv", (64, 320))


def test_wrong_stage_and_config_errors(mini, trained, tmp_path):
    with pytest.raises(ValueError, match="is a classifier, given as a segmenter"):
        predict(mini, [], ensemble.find_checkpoints([trained / "cls-tiny"]), tmp_path / "s.csv",
                InferenceConfig(num_workers=0), device="cpu")
    with pytest.raises(ValueError, match="need a classifier ensemble"):
        predict(mini, [], ensemble.find_checkpoints([trained / "seg-tiny"]), tmp_path / "s.csv",
                InferenceConfig(num_workers=0), pseudo_out=tmp_path / "p.csv", device="cpu")
    assert not (tmp_path / "s.csv").exists()
    with pytest.raises(ValueError, match="TTA modes"):
        InferenceConfig(tta=("rot90",))
    with pytest.raises(FileNotFoundError, match="no best.pt"):
        ensemble.find_checkpoints([tmp_path])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert InferenceConfig().postprocess == PostprocessConfig()


def test_two_devices_give_the_same_submission_as_one(mini, trained, tmp_path):
    """Kaggle's two T4s, simulated with two CPU 'devices': models spread over them, outputs gathered in
    model order."""
    models = ([trained / "cls-tiny" / "best.pt"], [trained / "seg-tiny" / "best.pt", trained / "seg-tiny" / "best.pt"])
    config = InferenceConfig(num_workers=0, postprocess=PostprocessConfig(label_thresholds=(0.2,) * 4,
                                                                          pixel_thresholds=(0.3,) * 4))
    one = predict(mini, *models, tmp_path / "one.csv", config, device="cpu")
    two = predict(mini, *models, tmp_path / "two.csv", config, device=["cpu", "cpu"])
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert one["table"].equals(two["table"])
