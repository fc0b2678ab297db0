import cv2
import numpy as np
import pytest

from steelkit import competition, realism, synthetic


def test_layout(mini):
    assert sorted(p.name for p in mini.iterdir()) == [
        "sample_submission.csv", "test_images", "test_truth.csv", "train.csv", "train_images"]
    assert len(list((mini / "train_images").glob("*.jpg"))) == 24
    assert len(list((mini / "test_images").glob("*.jpg"))) == 8


def test_the_real_presence_shares_and_co_occurrences():
    rng = np.random.default_rng(0)
    classes = synthetic.draw_classes(20000, rng, synthetic.SynthConfig())
    shares = np.array([np.mean([k in c for c in classes]) for k in (1, 2, 3, 4)])
    np.testing.assert_allclose(shares, [0.071, 0.020, 0.410, 0.064], atol=0.01)  # statistics.md
    assert np.mean([len(c) == 0 for c in classes]) == pytest.approx(0.47, abs=0.005)
    assert not any({1, 4} <= set(c) for c in classes), "never 1 and 4 together"
    assert np.mean([len(c) > 1 for c in classes]) == pytest.approx(425 / 12568, abs=0.006)
    pairs = {pair: sum(c == pair for c in classes) for pair in [(1, 2), (1, 3), (2, 3), (3, 4)]}
    assert max(pairs, key=pairs.get) == (3, 4) and pairs[(1, 3)] > pairs[(1, 2)] > pairs[(2, 3)]


def test_small_sets_still_hold_every_class(mini):
    table = competition.read_labels(mini / "train.csv", mini / "train_images")
    assert competition.presence(table).any(axis=0).all()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """300 training images of 64 x 400 (areas and components are scale-free) and their statistics."""
    out = synthetic.make(tmp_path_factory.mktemp("synthetic"),
                         synthetic.SynthConfig(n_train=300, n_test=1, height=64, width=400, seed=5))
    return realism.folder_statistics(out / "train_images", out / "train.csv")


def test_defect_areas_and_components_follow_the_real_percentiles(generated):
    rng = np.random.default_rng(9)
    drawn = {k: [synthetic.render((k,), 64, 400, rng)[1][k - 1] for _ in range(60)] for k in (1, 2, 3, 4)}
    areas = {k: np.array([m.sum() * 16.0 for m in masks]) for k, masks in drawn.items()}  # px of 256 x 1600
    components = {k: np.array([cv2.connectedComponents(m, connectivity=8)[0] - 1 for m in masks])
                  for k, masks in drawn.items()}
    for k, percentiles in synthetic.REAL_AREAS.items():
        p50 = percentiles[2]
        assert 0.6 * p50 <= np.median(areas[k]) <= 1.5 * p50, f"class {k} median area {np.median(areas[k]):.0f}"
    for k in (3, 4):  # the long tails: regions of tens of thousands of pixels
        assert np.percentile(areas[k], 95) > 40_000, f"class {k}"
    assert np.median(areas[2]) < np.median(areas[3]) < np.median(areas[4])
    assert np.percentile(components[1], 75) >= 2 and np.percentile(components[3], 75) >= 2
    assert np.percentile(components[2], 95) <= 3, "class 2: one or two thin marks"
    for k in (1, 3, 4):  # and in a whole generated set, as its masks came out
        assert len(generated[f"area {k}"]) >= 10
        assert 0.5 * synthetic.REAL_AREAS[k][2] <= np.median(generated[f"area {k}"]) <= 1.6 * synthetic.REAL_AREAS[k][2]


@pytest.fixture(scope="module")
def full_size(tmp_path_factory):
    """80 training images of 256 x 1600, where the fine texture's statistic (a gradient) is defined."""
    out = synthetic.make(tmp_path_factory.mktemp("full-size"),
                         synthetic.SynthConfig(n_train=80, n_test=1, seed=6))
    return realism.folder_statistics(out / "train_images")


def test_texture_follows_the_real_distributions(full_size):
    generated = full_size
    real = {"mean intensity": (9.6, 91.1, 132.8), "intensity std": (15.2, 30.2, 54.9),  # 5%, median, 95%
            "16 x 100 downscale std": (12.8, 28.0, 54.1), "mean Sobel gradient": (5.4, 34.2, 64.0)}
    for name, (low, median, high) in real.items():
        ours = np.percentile(generated[name], [5, 50, 95])
        assert 0.75 * median <= ours[1] <= 1.25 * median, f"{name}: median {ours[1]:.1f} vs {median}"
        assert ours[0] < (low + median) / 2 and ours[2] > (median + high) / 2, f"{name}: {ours} spread as {low}-{high}"
    assert 0.12 <= generated["dark band"].mean() <= 0.35, "about a quarter of the sheets show their edge"


def test_texture_scales_the_sheets_and_keeps_the_labels():
    def drawn(texture):
        return synthetic.render((3,), 128, 800, np.random.default_rng(8), texture)

    (busy, busy_labels, sheet), (calm, calm_labels, calm_sheet) = drawn(1.0), drawn(0.4)
    np.testing.assert_array_equal(busy_labels, calm_labels)
    assert sheet == calm_sheet
    inside = np.s_[:, sheet[0]:sheet[1]]
    spread = [image[:, :, 0][inside].astype(np.float32).std() for image in (busy, calm)]
    gx = [np.abs(cv2.Sobel(image[:, :, 0][inside].astype(np.float32), cv2.CV_32F, 1, 0)).mean()
          for image in (busy, calm)]
    assert spread[1] < 0.6 * spread[0] and gx[1] < 0.75 * gx[0], (spread, gx)


def test_labels_outline_the_drawn_defects_inside_the_sheet():
    rng = np.random.default_rng(3)
    gaps, banded = [], 0
    for _ in range(40):
        image, labels, (first, last) = synthetic.render((3, 4), 128, 800, rng)
        gray = image[:, :, 0].astype(np.float32)
        assert not labels[:, :, :first].any() and not labels[:, :, last:].any(), "a mask past the sheet's edge"
        banded += (first, last) != (0, 800)
        mask = labels[3].astype(bool)
        ring = cv2.dilate(labels[3], np.ones((15, 15), np.uint8)).astype(bool) & ~mask
        ring[:, :first], ring[:, last:] = False, False
        if mask.any() and ring.any():
            gaps.append(gray[ring].mean() - gray[mask].mean())
    assert banded >= 2, "the test saw sheets with a dark band"
    assert np.median(gaps) > 8, f"class 4 is darker than around it by {np.median(gaps):.1f} grey levels"
    appearance, change, label = synthetic.draw_defect(4, 256, 1600, np.random.default_rng(4))
    assert change < 0 and label[appearance > 0].all(), "every changed pixel lies inside its outline"


@pytest.mark.parametrize("shape", [(64, 400), (128, 800), (256, 1600), (32, 96)])
def test_the_same_seed_gives_the_same_competition_at_every_size(tmp_path, shape):
    config = synthetic.SynthConfig(n_train=4, n_test=2, height=shape[0], width=shape[1], seed=11)
    a, b = synthetic.make(tmp_path / "a", config), synthetic.make(tmp_path / "b", config)
    assert (a / "train.csv").read_text() == (b / "train.csv").read_text()
    for name in sorted(p.name for p in (a / "train_images").iterdir()):
        assert (a / "train_images" / name).read_bytes() == (b / "train_images" / name).read_bytes()
    assert competition.image_shape(a) == shape
    sample = (a / "sample_submission.csv").read_text().splitlines()
    assert sample[0] == "ImageId,EncodedPixels,ClassId" and sample[1].endswith(f",1 {shape[0] * shape[1]},0")


def test_the_realism_report_compares_like_with_like(tmp_path):
    same = {"mean intensity": np.arange(10.0), "dark band": np.zeros(10, bool)}
    other = {"mean intensity": np.arange(10.0) + 100, "dark band": np.ones(10, bool)}
    assert realism.ks_distance(same["mean intensity"], same["mean intensity"]) == 0
    assert realism.ks_distance(same["mean intensity"], other["mean intensity"]) == 1
    rows = {r["statistic"]: r for r in realism.compare(same, other)}
    assert rows["mean intensity"]["distance"] == 1 and rows["share with a dark band"]["distance"] == 1
    assert "| mean intensity | 4.5 (0.5-8.5) | 104 (100-109) | 10 / 10 | 1.00 |" in realism.format_table(
        realism.compare(same, other))


def test_config_is_checked():
    with pytest.raises(ValueError, match="too small"):
        synthetic.SynthConfig(height=8)
    with pytest.raises(ValueError, match="train_schema"):
        synthetic.SynthConfig(train_schema="csv")
    with pytest.raises(ValueError, match="texture 3"):
        synthetic.SynthConfig(texture=3)
