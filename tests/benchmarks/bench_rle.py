"""RLE encode and decode against the public-kernel implementations, on realistic masks."""


import numpy as np

from steelkit import rle, synthetic
from tests.benchmarks.public_kernel import mask2rle, rle2mask
from tests.benchmarks.timing import best_of


def realistic_masks(n: int = 200, seed: int = 0) -> list[np.ndarray]:
    """Annotation masks of every class, in the real proportions, at 256 x 1600."""
    rng = np.random.default_rng(seed)
    classes = rng.choice([1, 2, 3, 4], size=n, p=synthetic.REAL_CLASS_ROWS / synthetic.REAL_CLASS_ROWS.sum())
    return [synthetic.draw_defect(int(c), 256, 1600, rng)[2] for c in classes]


def run() -> list[dict]:
    masks = realistic_masks()
    ours_encode, ours_rles = best_of(rle.encode, masks)
    ref_encode, ref_rles = best_of(mask2rle, masks)
    assert ours_rles == ref_rles, "encoders disagree"
    ours_decode, ours_masks = best_of(rle.decode, ours_rles)
    ref_decode, ref_masks = best_of(rle2mask, ref_rles)
    assert all(np.array_equal(a, b) for a, b in zip(ours_masks, ref_masks)), "decoders disagree"
    return [speed_row("rle encode (per mask, vs public kernel)", ours_encode, ref_encode, 3.0),
            speed_row("rle decode (per mask, vs public kernel)", ours_decode, ref_decode, 3.0)]


def speed_row(name: str, ours_s: float, reference_s: float, target: float) -> dict:
    ratio = reference_s / ours_s
    return {"benchmark": name, "ours": ours_s * 1e3, "reference": reference_s * 1e3, "unit": "ms", "ratio": ratio,
            "target": f">= {target:g}x", "ok": ratio >= target}
