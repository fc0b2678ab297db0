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


def test_score_against_a_long_schema_truth(tmp_path):
    """Today's train.csv lists only the images with defects: a validation fold's predictions are scored
    against the fold's rows of it, the fold's defect-free images counted as such and said so."""
    data = tmp_path / "data"
    assert steelkit("synth", data, "--train", 16, "--test", 2, "--seed", 4, "--shape", "32x96").returncode == 0
    labels = pd.read_csv(data / "train.csv")  # long schema, defect rows only
    images = sorted(p.name for p in (data / "train_images").iterdir())
    fold = images[:10]
    named = sorted(set(labels["ImageId"]) & set(fold))
    assert 0 < len(named) < len(fold)
    truth = tmp_path / "fold_truth.csv"
    labels[labels["ImageId"].isin(fold)].to_csv(truth, index=False)
    perfect = tmp_path / "perfect.csv"  # the truth's own masks, four rows an image, defect-free ones empty
    rows = labels.set_index(["ImageId", "ClassId"])["EncodedPixels"]
    pd.DataFrame([(i, c, rows.get((i, c), "")) for i in fold for c in (1, 2, 3, 4)],
                 columns=["ImageId", "ClassId", "EncodedPixels"]).to_csv(perfect, index=False)

    scored = steelkit("score", perfect, truth)
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.splitlines()[0] == "mean Dice: 1.00000"
    assert f"{len(fold)} images scored, {len(fold) - len(named)} of them as defect-free" in scored.stdout

    pinned = tmp_path / "pinned"
    pinned.mkdir()
    for name in fold:
        (pinned / name).symlink_to(data / "train_images" / name)
    assert steelkit("score", perfect, truth, "--images", pinned).returncode == 0
    (pinned / images[12]).symlink_to(data / "train_images" / images[12])  # an image the submission lacks
    short = steelkit("score", perfect, truth, "--images", pinned)
    assert short.returncode == 2 and "Traceback" not in short.stderr
    assert f"{images[12]}_1" in short.stderr and "missing" in short.stderr

    partial = tmp_path / "partial.csv"  # a defect image of the truth left out of the submission
    table = pd.read_csv(perfect)
    table[table["ImageId"] != named[0]].to_csv(partial, index=False)
    missing = steelkit("score", partial, truth)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"1 images of {truth} are not in {partial}, e.g. {named[0]}" in missing.stderr


def test_a_bug_in_steelkit_keeps_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    """An internal KeyError (a wrong key in steelkit's own dicts) is no user's mistake: traceback, exit 1."""
    from steelkit import cli, errors

    def broken(args):
        return {}["a key steelkit forgot"]

    monkeypatch.setattr(cli, "cmd_budget", broken)
    assert cli.main(["budget", "--train", "cls-r34"]) == 1
    said = capsys.readouterr().err
    assert "Traceback" in said and "KeyError: 'a key steelkit forgot'" in said and errors.REPORT in said


def test_a_users_mistake_is_one_line_and_exit_2(capsys):
    from steelkit import cli

    assert cli.main(["budget", "--train", "cls-r99"]) == 2
    said = capsys.readouterr().err
    assert said.startswith("steelkit budget: error: unknown preset 'cls-r99'") and "Traceback" not in said


def test_build_kernel_tells_a_bug_from_a_mistake(monkeypatch, capsys, tmp_path):
    import build_kernel
    from steelkit import errors

    assert build_kernel.main(["plan", "no such kernel"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert build_kernel.main(["fetch", "--out", str(tmp_path)]) == 2  # nothing pushed yet: nothing to fetch
    said = capsys.readouterr().err
    assert "no COMPLETE kernel in" in said and "Traceback" not in said
    monkeypatch.setattr(build_kernel, "cmd_plan", lambda args: [][1])
    assert build_kernel.main(["plan"]) == 1
    said = capsys.readouterr().err
    assert "IndexError" in said and errors.REPORT in said
