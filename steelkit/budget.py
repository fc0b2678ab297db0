"""Run-time budget of the submission kernel on Kaggle's GPUs, estimated before a push, or measured.

Estimate: per model, FLOPs of one 256 x 1600 image (torch's FlopCounterMode on the model its recipe
builds, no weights) x TTA modes x test images, divided by the throughput its architecture family reaches
on a T4 with mixed precision, and by the number of GPUs (``predict`` spreads the ensemble's models over
them); plus a per-image cost on the CPU (reading, post-processing, RLE). The assumptions, from published
figures:

- ResNets: about 1,200 images/s for ResNet-50 at 224 x 224 with AMP on one T4 (NVIDIA's deep-learning
  examples, ResNet-50 v1.5 inference), i.e. about 9.8 TFLOP/s; a best case, which full-resolution
  encoder-decoders approach.
- EfficientNets and other depthwise-separable nets (MobileNets): about a quarter of ResNet's
  throughput per FLOP (depthwise convolutions are memory-bound), about 2.5 TFLOP/s.
- Kaggle's GPU kernels have two T4s.

Measure (``measure``): time the actual models on the device at hand, one batch per TTA mode after a
warm-up, and extrapolate to the test set: a user with a GPU replaces the guess with a measurement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from steelkit.models import build_model

T4_TFLOPS = {"resnet": 9.8, "depthwise": 2.45}  # effective fp16 TFLOP/s per family on one T4 (see above)
KAGGLE_GPUS = 2
PER_IMAGE_SECONDS = 0.01  # JPEG decode, post-processing of the kept classes, RLE, on Kaggle's 4 CPU cores
LIMIT_MINUTES = 60
SHAPE = (256, 1600)


def family(recipe) -> str:
    """The throughput family of a recipe's encoder."""
    name = recipe.encoder.lower()
    return "depthwise" if any(key in name for key in ("efficientnet", "mobilenet", "mnasnet", "mixnet")) \
        else "resnet"


@dataclass(frozen=True)
class Estimate:
    minutes: float
    tflop: float
    images: int
    per_stage: dict = field(default_factory=dict)  # stage -> minutes
    how: str = f"estimated on Kaggle's {KAGGLE_GPUS} T4s"

    @property
    def over_limit(self) -> bool:
        return self.minutes > LIMIT_MINUTES

    def __str__(self) -> str:
        verdict = (f"EXCEEDS the competition's {LIMIT_MINUTES}-minute cap" if self.over_limit
                   else f"within the {LIMIT_MINUTES}-minute cap")
        parts = [f"{stage} {minutes:.1f} min" for stage, minutes in self.per_stage.items()]
        parts += [f"{self.tflop:.0f} TFLOP"] if self.tflop else []
        return f"{self.how}: {self.minutes:.1f} min for {self.images} test images ({', '.join(parts)}): {verdict}"


def model_flops(recipe, shape: tuple[int, int] = SHAPE) -> float:
    """Floating-point operations of one forward pass on one image of ``shape``."""
    model = build_model(recipe, load_weights=False).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, *shape))
    return float(counter.get_total_flops())


def estimate(recipes, n_images: int, tta_modes: int = 3, tflops: float | None = None, gpus: int = KAGGLE_GPUS,
             shape: tuple[int, int] = SHAPE) -> Estimate:
    """The submission kernel's time for an ensemble of ``recipes`` (both stages) on ``n_images``, from the
    family throughputs above (or one ``tflops`` for all)."""
    cache: dict = {}
    total, seconds = 0.0, {}
    for recipe in recipes:
        if recipe not in cache:
            cache[recipe] = model_flops(recipe, shape)
        flop = cache[recipe] * tta_modes * n_images
        total += flop
        rate = (tflops or T4_TFLOPS[family(recipe)]) * 1e12 * gpus
        seconds[recipe.stage] = seconds.get(recipe.stage, 0.0) + flop / rate
    seconds["cpu"] = PER_IMAGE_SECONDS * n_images
    return Estimate(minutes=sum(seconds.values()) / 60, tflop=total / 1e12, images=n_images,
                    per_stage={stage: s / 60 for stage, s in seconds.items()},
                    how=f"estimated on {gpus} T4{'s' if gpus > 1 else ''}")


@torch.no_grad()
def measure(models, n_images: int, tta_modes: int = 3, batch_size: int = 8, device: str | None = None,
            shape: tuple[int, int] = SHAPE, repeats: int = 2) -> Estimate:
    """Time ``models`` ((model, stage) pairs, e.g. loaded checkpoints) on ``device``: one batch per TTA mode
    after a warm-up, extrapolated to ``n_images`` on this one device."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    images = torch.zeros(batch_size, 3, *shape, device=device)
    seconds: dict[str, float] = {}
    for model, stage in models:
        model = model.to(device).eval()
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            model(images)  # warm-up: cudnn picks its kernels
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            for _ in range(repeats * tta_modes):
                model(images)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        per_image = (time.perf_counter() - started) / (repeats * batch_size)
        seconds[stage] = seconds.get(stage, 0.0) + per_image * n_images
    seconds["cpu"] = PER_IMAGE_SECONDS * n_images
    return Estimate(minutes=sum(seconds.values()) / 60, tflop=0.0, images=n_images,
                    per_stage={stage: s / 60 for stage, s in seconds.items()}, how=f"measured on {device}")
