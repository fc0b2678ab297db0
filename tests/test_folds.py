import numpy as np
import pytest

from steelkit import competition, folds, synthetic


def test_folds_are_deterministic_complete_and_stratified(tmp_path):
    data = synthetic.make(tmp_path / "d", synthetic.SynthConfig(n_train=150, n_test=2, height=32, width=64, seed=5))
    table = competition.read_labels(data / "train.csv", data / "train_images")
    first = folds.make_folds(table, n_folds=5, seed=7)
    assert first.equals(folds.make_folds(table, n_folds=5, seed=7))
    assert not first.equals(folds.make_folds(table, n_folds=5, seed=8))
    assert sorted(first["fold"].unique()) == [0, 1, 2, 3, 4]
    assert list(first["ImageId"]) == list(table["ImageId"])
    labels = competition.presence(table)
    targets = np.column_stack([labels, ~labels.any(axis=1)])
    per_fold = np.array([targets[first["fold"].to_numpy() == k].sum(axis=0) for k in range(5)])
    # each label's images spread over the folds within one image of an even split
    assert (per_fold.max(axis=0) - per_fold.min(axis=0) <= 1).all(), per_fold


def test_load_or_make_saves_then_reads(tmp_path, mini):
    table = competition.read_labels(mini / "train.csv", mini / "train_images")
    path = tmp_path / "folds.csv"
    made = folds.load_or_make(table, path, n_folds=4, seed=1)
    assert path.is_file()
    again = folds.load_or_make(table, path, n_folds=4, seed=1)  # read back, not remade
    assert again[["ImageId", "fold"]].equals(made[["ImageId", "fold"]])
    with pytest.raises(ValueError, match="made with seed 1, the recipe asks for folds_seed 999"):
        folds.load_or_make(table, path, n_folds=4, seed=999)
    with pytest.raises(ValueError, match="holds 4 folds, the recipe asks for 5: train with --set n_folds=4"):
        folds.load_or_make(table, path, n_folds=5, seed=1)
