import numpy as np
import pytest

from steelkit import competition, synthetic


def test_layout(mini):
    assert sorted(p.name for p in mini.iterdir()) == [
        "sample_submission.csv", "test_images", "test_truth.csv", "train.csv", "train_images"]
    assert len(list((mini / "train_images").glob("*.jpg"))) == 24
    assert len(list((mini / "test_images").glob("*.jpg"))) == 8


def test_real_class_balance():
    rng = np.random.default_rng(0)
    classes = synthetic.draw_classes(4000, rng, synthetic.SynthConfig())
    empty = np.mean([len(c) == 0 for c in classes])
    counts = np.array([sum(k in c for c in classes) for k in (1, 2, 3, 4)])
    assert empty == pytest.approx(0.47, abs=0.01)
    assert counts.argmax() == 2 and counts.argmin() == 1  # class 3 most common, class 2 rarest
    assert counts[2] > 3 * counts[[0, 1, 3]].max()
    assert not any({1, 4} <= set(c) for c in classes)
    assert 0.02 < np.mean([len(c) > 1 for c in classes]) < 0.06


def test_small_sets_still_hold_every_class(mini):
    table = competition.read_labels(mini / "train.csv", mini / "train_images")
    assert competition.presence(table).any(axis=0).all()


def test_defect_sizes_differ_per_class_as_the_real_ones_do():
    rng = np.random.default_rng(1)
    areas = {c: np.median([synthetic.draw_defect(c, 256, 1600, rng)[2].sum() for _ in range(40)]) for c in (1, 2, 3, 4)}
    assert areas[2] < areas[1] < areas[4] and areas[2] < areas[3] < areas[4]


def test_labels_cover_the_defect_and_are_coarse():
    rng = np.random.default_rng(2)
    for class_id in (1, 2, 3, 4):
        region, _, label = synthetic.draw_defect(class_id, 128, 800, rng)
        assert label[region > 0].all(), "the polygon covers every defect pixel"
        assert label.sum() > region.sum()


def test_seed_and_size(tmp_path):
    config = synthetic.SynthConfig(n_train=5, n_test=3, height=32, width=96, seed=11)
    a, b = synthetic.make(tmp_path / "a", config), synthetic.make(tmp_path / "b", config)
    assert (a / "train.csv").read_text() == (b / "train.csv").read_text()
    assert competition.image_shape(a) == (32, 96)
    sample = (a / "sample_submission.csv").read_text().splitlines()
    assert sample[0] == "ImageId,EncodedPixels,ClassId" and sample[1].endswith(",1 3072,0")


def test_config_is_checked():
    with pytest.raises(ValueError, match="too small"):
        synthetic.SynthConfig(height=8)
    with pytest.raises(ValueError, match="train_schema"):
        synthetic.SynthConfig(train_schema="csv")
