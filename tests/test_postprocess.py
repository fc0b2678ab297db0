import cv2
import numpy as np
import pytest

from steelkit.postprocess import DENSE_SHARE, PostprocessConfig, clean_mask, kept_by_size, postprocess


def reference(seg_probs, cls_probs, config):
    """The straightforward version: threshold, connected components, a loop over components."""
    out = np.zeros(seg_probs.shape, dtype=np.uint8)
    for k in range(4):
        if cls_probs[k] < config.label_thresholds[k]:
            continue
        mask = (seg_probs[k] > config.pixel_thresholds[k]).astype(np.uint8)
        count, labels = cv2.connectedComponents(mask, connectivity=8)
        for c in range(1, count):
            component = labels == c
            if component.sum() >= config.min_component_px[k]:
                out[k][component] = 1
        if out[k].sum() < config.min_total_px[k]:
            out[k] = 0
    return out


def noisy_probs(rng, shape=(4, 64, 200)):
    probs = cv2.GaussianBlur(rng.random(shape[1:] + (4,)).astype(np.float32), (0, 0), 3).transpose(2, 0, 1)
    probs = (probs - probs.min()) / (probs.max() - probs.min())
    return np.ascontiguousarray(probs, dtype=np.float32)


@pytest.mark.parametrize("seed", range(8))
def test_matches_the_reference_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    probs = noisy_probs(rng)
    config = PostprocessConfig(label_thresholds=tuple(rng.uniform(0.2, 0.8, 4).round(2)),
                               pixel_thresholds=tuple(rng.uniform(0.4, 0.7, 4).round(2)),
                               min_component_px=tuple(int(v) for v in rng.integers(0, 60, 4)),
                               min_total_px=tuple(int(v) for v in rng.integers(0, 400, 4)))
    cls = rng.random(4).astype(np.float32)
    np.testing.assert_array_equal(postprocess(probs, cls, config), reference(probs, cls, config))


def test_edge_cases():
    config = PostprocessConfig()
    zeros, ones = np.zeros((4, 256, 1600), np.float32), np.ones((4, 256, 1600), np.float32)
    sure = np.ones(4, np.float32)
    assert postprocess(zeros, sure, config).sum() == 0
    assert (postprocess(ones, sure, config) == 1).all()
    assert postprocess(ones, np.array([0.69, 0.7, 0.59, 0.6], np.float32), config).any(axis=(1, 2)).tolist() == \
        [False, True, False, True]  # the label threshold is inclusive
    at_threshold = np.full((4, 256, 1600), 0.55, np.float32)
    assert postprocess(at_threshold, sure, config).sum() == 0  # pixels strictly above 0.55


def test_components_and_total_area_in_the_seed_order():
    probs = np.zeros((4, 256, 1600), np.float32)
    probs[0, 10:20, 10:24] = 0.9  # 140 px: under the 150 px component minimum
    probs[0, 100:120, 100:130] = 0.9  # 600 px: stays, and reaches class 1's 600 px total
    probs[3, 100:140, 100:140] = 0.9  # 1600 px: under class 4's 2000 px total
    out = postprocess(probs, np.ones(4, np.float32), PostprocessConfig())
    assert out[0].sum() == 600 and out[0, 10:20, 10:24].sum() == 0
    assert out[3].sum() == 0
    diagonal = np.zeros((8, 8), np.float32)
    diagonal[np.arange(8), np.arange(8)] = 1
    assert clean_mask(diagonal, 0.5, 8, 0).sum() == 8, "8-connected: a diagonal line is one component"


def test_areas_scale_with_the_image():
    small = PostprocessConfig().for_shape((128, 800))
    assert small.min_total_px == (150, 150, 225, 500) and small.min_component_px == (38, 38, 38, 38)
    assert PostprocessConfig().for_shape((256, 1600)) == PostprocessConfig()


def test_config_is_checked():
    with pytest.raises(ValueError, match="four values"):
        PostprocessConfig(label_thresholds=(0.5,))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PostprocessConfig(pixel_thresholds=(0.5, 0.5, 1.5, 0.5))


def test_many_components_take_the_other_lookup():
    rng = np.random.default_rng(9)
    probs = np.zeros((4, 128, 400), np.float32)
    probs[:, ::4, ::4] = 0.9  # 3200 isolated pixels per class: more labels than a byte holds
    probs[:, 40:60, 100:140] = rng.uniform(0.6, 1.0, (4, 20, 40))
    config = PostprocessConfig(label_thresholds=(0.0,) * 4, min_component_px=(2, 2, 2, 2), min_total_px=(0,) * 4)
    out = postprocess(probs, np.ones(4, np.float32), config)
    np.testing.assert_array_equal(out, reference(probs, np.ones(4, np.float32), config))
    assert out[:, :, :90].sum() == 0 and (out[:, 40:60, 100:140] == 1).all()  # specks gone, the block kept


def speckled(rng, shape, sigma, gain, base):
    """(4, *shape) maps: blurred noise crossing the threshold in blobs, sparse or dense by ``base``."""
    noise = np.stack([cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), sigma) for _ in range(4)])
    return np.clip((noise - noise.mean()) * gain + base, 0, 1).astype(np.float32)


def path_of(mask: np.ndarray) -> str:
    """Which of post-processing's three ways of counting and clearing a mask goes down."""
    count = cv2.connectedComponents(mask, connectivity=8)[0]
    return "8-bit" if count <= 256 else "foreground" if mask.mean() <= DENSE_SHARE else "lookup"


def unsure(rng, shape, share):
    """(4, *shape) speckle whose share of pixels above 0.55 is ``share``: hundreds of tiny components."""
    noise = np.stack([cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 1.0) for _ in range(4)])
    cut = np.quantile(noise, 1 - share, axis=(1, 2), keepdims=True)
    return np.clip((noise - cut) * 3 + 0.55, 0, 1).astype(np.float32)


@pytest.mark.parametrize("kind", ["8-bit", "foreground", "lookup"])
@pytest.mark.parametrize("seed", range(2))
def test_matches_the_reference_down_every_path(kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "8-bit":  # a few defect blobs on a full-size map
        probs = speckled(rng, (256, 1600), 2.5, 2.6, 0.25)
    else:  # an unsure model's speckle, under and over the share where clearing turns to a lookup
        probs = unsure(rng, (96, 400), 0.08 if kind == "foreground" else 0.25)
    assert {path_of((p > 0.55).view(np.uint8)) for p in probs} == {kind}
    config = PostprocessConfig(label_thresholds=(0.0,) * 4, pixel_thresholds=(0.55,) * 4,
                               min_component_px=(2, 5, 20, 151), min_total_px=(0, 100, 300, 0))
    sure = np.ones(4, np.float32)
    out = postprocess(probs, sure, config)
    np.testing.assert_array_equal(out, reference(probs, sure, config))
    assert out[:3].any() and (out <= (probs > 0.55)).all()


@pytest.mark.parametrize("singles,share,path", [(0, 0.05, "8-bit"), (249, 0.05, "8-bit"), (250, 0.05, "foreground"),
                                               (400, 0.2, "lookup")])
def test_edge_cases_down_every_path(singles, share, path):
    """Components of exactly the minimum and one pixel under it, on the image's borders and corners, a
    total exactly at its minimum; with 255 components (the most 8-bit labels hold) and 256, and a share of
    foreground on either side of the lookup's."""
    height, width = 100, 200
    probs = np.zeros((height, width), np.float32)
    probs[0, 0] = probs[-1, -1] = 0.9  # single pixels in two corners: removed
    probs[0:3, 50:53] = 0.9  # 9 px on the top border: exactly the minimum, kept
    probs[-2:, 100:104] = 0.9  # 8 px on the bottom border: one under, removed
    probs[40:43, -3:] = 0.9  # 9 px on the right border: kept
    spots = [(r, c) for r in range(60, 97, 2) for c in range(0, 99, 2)][:singles]
    for r, c in spots:  # isolated pixels: removed
        probs[r, c] = 0.9
    filler = int(share * probs.size) - int((probs > 0.5).sum())
    rows = filler // 80
    probs[20:20 + rows, 110:190] = 0.9  # one block brings the foreground to ``share``
    probs[20 + rows, 110:110 + filler - rows * 80] = 0.9
    assert path_of((probs > 0.5).view(np.uint8)) == path
    kept = 9 + 9 + filler
    for total in (kept, kept + 1):  # at the total minimum: kept; one pixel over it: everything dropped
        out = clean_mask(probs, 0.5, 9, total)
        expected = reference(np.stack([probs] * 4), np.ones(4, np.float32),
                             PostprocessConfig(label_thresholds=(0.0,) * 4, pixel_thresholds=(0.5,) * 4,
                                               min_component_px=(9,) * 4, min_total_px=(total,) * 4))[0]
        np.testing.assert_array_equal(out, expected)
        assert out.sum() == (kept if total == kept else 0)
    assert clean_mask(probs, 0.5, 1, 0).sum() == (probs > 0.5).sum()  # a minimum of one pixel removes nothing
    assert clean_mask(probs[:1, :1], 0.5, 2, 0).sum() == 0 and clean_mask(probs[:1, :1], 0.5, 1, 1).sum() == 1


@pytest.mark.parametrize("speckle", [False, True], ids=["few components", "over 255 components"])
def test_the_tables_kernel_keeps_what_clean_mask_keeps_map_by_map_and_stacked(speckle):
    """kept_by_size, the one kernel of the full-resolution tables and of the search on stored maps: a stack
    labelled at once, and each map alone, give what clean_mask keeps (area and overlap) at every size, for
    float maps and for uint8 ones; a component touching a map's last row does not join the next map's first."""
    rng = np.random.default_rng(7)
    noise = rng.random((5, 48, 160)).astype(np.float32)
    probs = noise ** 6 if speckle else np.stack([cv2.GaussianBlur(m, (0, 0), 3) for m in noise])
    probs = (probs - probs.min()) / (probs.max() - probs.min())
    probs[1, -1, :] = probs[2, 0, :] = 1.0  # touching rows across two maps
    truth = rng.random(probs.shape) < 0.3
    sizes = [0, 3, 20, 200]
    for threshold in (0.3, 0.55):
        expected = np.array([[[clean_mask(p, threshold, size, 0).astype(bool).sum(),
                               (clean_mask(p, threshold, size, 0).astype(bool) & t).sum()] for size in sizes]
                             for p, t in zip(probs, truth)])
        if speckle:
            assert cv2.connectedComponents((probs[0] > threshold).view(np.uint8), connectivity=8)[0] > 256
        area, overlap = kept_by_size(probs, np.float32(threshold), np.flatnonzero(truth), np.array(sizes))
        assert np.stack([area, overlap], -1).tolist() == expected.tolist()
        for n in range(len(probs)):
            area, overlap = kept_by_size(probs[n][None], np.float32(threshold), np.flatnonzero(truth[n]), sizes)
            assert np.stack([area[0], overlap[0]], -1).tolist() == expected[n].tolist()
        maps = np.round(probs * 255).astype(np.uint8)  # the stored maps' domain: kept where > a level
        level = int(np.ceil(threshold * 255))
        area, _ = kept_by_size(maps, level, np.flatnonzero(truth), sizes)
        assert area.tolist() == [[clean_mask(m / 255, level / 255 + 1e-6, size, 0).sum() for size in sizes]
                                 for m in maps]
    with pytest.raises(ValueError, match="ascending"):
        kept_by_size(probs, 0.5, np.flatnonzero(truth), [20, 3])
