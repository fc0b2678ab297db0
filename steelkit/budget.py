"""Run-time budget of the submission kernel on Kaggle's GPU, estimated before a push.

time = sum over models of (FLOPs per full image x TTA modes) x test images / effective GPU throughput
       + a per-image cost for reading, post-processing and encoding.
FLOPs are counted with torch's FlopCounterMode on one 256 x 1600 image (models built from their recipes,
no weights). The throughput is a conservative effective figure for a T4 with mixed precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from steelkit.models import build_model

T4_EFFECTIVE_TFLOPS = 8.0  # of 65 peak fp16: convolutions at full resolution reach a fraction of it
PER_IMAGE_SECONDS = 0.03  # JPEG decode, post-processing of 4 maps, RLE, on Kaggle's 2-4 CPU cores
LIMIT_MINUTES = 60


@dataclass(frozen=True)
class Estimate:
    minutes: float
    tflop: float
    images: int

    @property
    def over_limit(self) -> bool:
        return self.minutes > LIMIT_MINUTES

    def __str__(self) -> str:
        verdict = (f"EXCEEDS the competition's {LIMIT_MINUTES}-minute cap" if self.over_limit
                   else f"within the {LIMIT_MINUTES}-minute cap")
        return (f"estimated {self.minutes:.1f} min on Kaggle's GPU for {self.images} test images "
                f"({self.tflop:.0f} TFLOP): {verdict}")


def model_flops(recipe, shape: tuple[int, int] = (256, 1600)) -> float:
    """Floating-point operations of one forward pass on one image of ``shape``."""
    model = build_model(recipe, load_weights=False).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, *shape))
    return float(counter.get_total_flops())


def estimate(recipes, n_images: int, tta_modes: int = 3, tflops: float = T4_EFFECTIVE_TFLOPS,
             shape: tuple[int, int] = (256, 1600)) -> Estimate:
    """The submission kernel's time for an ensemble of ``recipes`` (both stages) on ``n_images``."""
    cache: dict = {}
    total = 0.0
    for recipe in recipes:
        if recipe not in cache:
            cache[recipe] = model_flops(recipe, shape)
        total += cache[recipe] * tta_modes * n_images
    seconds = total / (tflops * 1e12) + PER_IMAGE_SECONDS * n_images
    return Estimate(minutes=seconds / 60, tflop=total / 1e12, images=n_images)
