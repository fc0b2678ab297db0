"""Post-processing + RLE per image against the public-kernel style, on realistic noisy probability maps."""

import cv2
import numpy as np

from steelkit import rle, synthetic
from steelkit.postprocess import PostprocessConfig, postprocess
from tests.benchmarks.bench_rle import best_of, speed_row
from tests.benchmarks.public_kernel import mask2rle
from tests.benchmarks.public_kernel import post_process as public_post_process

THRESHOLD, MIN_SIZE = 0.55, 150


def noisy_maps(n: int = 12, seed: int = 0) -> list[np.ndarray]:
    """(4, 256, 1600) float32 maps: defects near 0.9 plus blurred noise that crosses the threshold in
    many small blobs, as an undertrained segmenter's maps do."""
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(n):
        classes = rng.choice([1, 2, 3, 4], size=rng.integers(1, 3), replace=False)
        probs = np.zeros((4, 256, 1600), np.float32)
        for k in range(4):
            noise = cv2.GaussianBlur(rng.random((256, 1600)).astype(np.float32), (0, 0), 2.5)
            probs[k] = np.clip((noise - noise.mean()) * 2.6 + 0.3, 0, 1)
        for c in classes:
            label = synthetic.draw_defect(int(c), 256, 1600, rng)[2]
            probs[c - 1] = np.maximum(probs[c - 1], cv2.GaussianBlur(label.astype(np.float32) * 0.9, (0, 0), 3))
        maps.append(probs)
    return maps


def public(probs: np.ndarray) -> list[str]:
    return [mask2rle(public_post_process(probs[k], THRESHOLD, MIN_SIZE)[0]) for k in range(4)]


# the public kernel keeps components of more than MIN_SIZE px and has no label gating or total-area rule
SAME_RULES = PostprocessConfig(label_thresholds=(0.0,) * 4, pixel_thresholds=(THRESHOLD,) * 4,
                               min_component_px=(MIN_SIZE + 1,) * 4, min_total_px=(0,) * 4)
SURE = np.ones(4, np.float32)


def ours(probs: np.ndarray) -> list[str]:
    return [rle.encode(m) for m in postprocess(probs, SURE, SAME_RULES)]


def run() -> list[dict]:
    maps = noisy_maps()
    assert [ours(m) for m in maps] == [public(m) for m in maps], "post-processing outputs differ"
    components = np.mean([cv2.connectedComponents((m[k] > THRESHOLD).astype(np.uint8))[0] for m in maps
                          for k in range(4)])
    row = speed_row(f"postprocess+rle per image ({components:.0f} comps/map)", best_of(ours, maps)[0],
                    best_of(public, maps, repeat=1)[0], 10.0)
    return [row]
