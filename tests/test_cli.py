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
