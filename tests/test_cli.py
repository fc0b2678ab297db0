"""The command line, run as a user runs it: ``python -m steelkit ...`` in a subprocess."""

import subprocess
import sys

import pandas as pd


def steelkit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "steelkit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def test_synth_score_validate_folds(tmp_path):
    data = tmp_path / "data"
    done = steelkit("synth", data, "--train", 12, "--test", 6, "--seed", 2, "--shape", "32x96")
    assert done.returncode == 0, done.stderr
    assert (data / "test_truth.csv").is_file()

    truth = steelkit("score", data / "test_truth.csv", data / "test_truth.csv")
    assert truth.returncode == 0, truth.stderr
    assert truth.stdout.splitlines()[0] == "mean Dice: 1.00000"

    empty = tmp_path / "empty.csv"
    sample = pd.read_csv(data / "sample_submission.csv")
    pd.DataFrame({"ImageId": sample["ImageId"].repeat(4), "EncodedPixels": "",
                  "ClassId": [1, 2, 3, 4] * len(sample)}).to_csv(empty, index=False)
    scored = steelkit("score", empty, data / "test_truth.csv")
    assert scored.stdout.splitlines()[0].startswith("mean Dice: 0.")
    assert steelkit("validate", empty, "--sample", data / "sample_submission.csv").returncode == 0

    bad = tmp_path / "bad.csv"
    bad.write_text(empty.read_text().replace(",,1\n", ",1 99999,1\n", 1))
    rejected = steelkit("validate", bad, "--sample", data / "sample_submission.csv")
    assert rejected.returncode == 1
    assert "line 2" in rejected.stderr and "past the end of a 32x96 image" in rejected.stderr

    folds = steelkit("folds", "--data", data, "--n-folds", 3)
    assert folds.returncode == 0, folds.stderr
    assert sorted(pd.read_csv(data / "folds.csv")["fold"].unique()) == [0, 1, 2]


def test_bad_shape_argument_is_a_usage_error(tmp_path):
    done = steelkit("synth", tmp_path, "--shape", "big")
    assert done.returncode == 2 and "HEIGHTxWIDTH" in done.stderr


def test_thresholds_then_predict_with_pseudo_labels(mini, trained, tmp_path):
    tuned = steelkit("thresholds", "--data", mini, "--classifiers", trained / "cls-tiny", "--segmenters",
                     trained / "seg-tiny", "--out", tmp_path / "inference.json")
    assert tuned.returncode == 0, tuned.stderr
    assert "threshold search on" in tuned.stdout and (tmp_path / "inference.json").is_file()
    done = steelkit("predict", "--data", mini, "--classifiers", trained / "cls-tiny", "--segmenters",
                    trained / "seg-tiny", "--config", tmp_path / "inference.json", "--tta", "none,vflip",
                    "--out", tmp_path / "submission.csv", "--pseudo-out", tmp_path / "pseudo.csv", "--round", 2,
                    "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "pseudo-labelled images (round 2)" in done.stdout
    assert "mean Dice:" in done.stdout and "all-empty" in done.stdout, "scored against test_truth.csv"
    assert list((tmp_path / "overlays").glob("*.png")) or "0 overlay pictures" in done.stdout
    assert steelkit("validate", tmp_path / "submission.csv", "--sample", mini / "sample_submission.csv").returncode == 0
