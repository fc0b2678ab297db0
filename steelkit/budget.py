"""Run-time budgets on Kaggle's GPUs, estimated before a push, or measured: the submission kernel (inference)
and each training kernel.

Submission estimate: per model, FLOPs of one 256 x 1600 image (torch's FlopCounterMode on the model its recipe
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

import json
import os
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from steelkit import atomic, timelimit, units
from steelkit.errors import UserError
from steelkit.rle import IMAGE_SHAPE

T4_TFLOPS = {"resnet": 9.8, "depthwise": 2.45}  # effective fp16 TFLOP/s per family on one T4 (see above)
KAGGLE_GPUS = 2
PER_IMAGE_SECONDS = 0.01  # JPEG decode, post-processing of the kept classes, RLE, on Kaggle's 4 CPU cores
LIMIT_MINUTES = 60
TRAIN_STEP_FACTOR = 3  # forward + backward of activations + backward of weights (see above)
DDP_EFFICIENCY = 0.9  # two T4s: share of twice one T4's rate (an assumption, see above)
KAGGLE_CPU_CORES = 4
# core-seconds a warm (cached) item costs through the DataLoader, its transfer included: a 256 x 512 training
# crop, a full validation image; measured here by ``make bench`` (2 cores / a 2-worker loader's items a second)
LOADER_SECONDS = {"train": 0.0011, "full": 0.0026}
TABLES_SECONDS = 0.011  # the final pass's labelling per image on Kaggle's 4 cores (22 ms on 2 threads here)
DECODE_SECONDS = 0.0041  # one JPEG decode, for the start-up image check (4 threads)
STARTUP_SECONDS = 120.0  # wheels installed (~60 s) + the notebook started and its outputs saved (~60 s)
SESSION_HOURS = timelimit.KERNEL_LIMIT / 3600  # what a training session may use: the notebooks stop by it


# Peak dense FP16/BF16 tensor TFLOP/s and memory bandwidth (GB/s) of the GPUs a check may run on (NVIDIA's
# datasheets). A rate measured on one is carried to a T4 by the two devices' ratio for its family: peak FLOP/s
# for the ResNets (compute-bound), bandwidth for the depthwise family (memory-bound). A large GPU at the
# recipes' batch sizes reaches a smaller share of its peak than a T4 does: a carried figure errs slow.
DEVICES = {"T4": (65.0, 320.0), "P100": (18.7, 732.0), "V100": (125.0, 900.0), "A10": (125.0, 600.0),
           "L4": (121.0, 300.0), "A100": (312.0, 2039.0), "H100": (989.0, 3350.0), "H200": (989.0, 4800.0)}
DEVICES_SOURCE = ("NVIDIA's datasheets: dense FP16/BF16 tensor TFLOP/s for the ResNets, memory bandwidth for the "
                  "depthwise family")


def device_spec(name: str) -> tuple[str, tuple[float, float]] | None:
    """(model, (peak TFLOP/s, GB/s)) of a GPU named as torch names it ("NVIDIA H200", "Tesla T4"), else None."""
    for token in name.upper().replace("-", " ").split():
        if token in DEVICES:
            return token, DEVICES[token]
    return None


def to_t4(family_name: str, device: str) -> float:
    """The factor that carries a rate of ``family_name`` measured on ``device`` to a T4 (see DEVICES)."""
    found = device_spec(device)
    if found is None:
        raise UserError(f"device {device!r}: its peak figures are unknown (known: {', '.join(DEVICES)}), so a rate "
                        "measured there cannot be carried to a T4")
    (tflops, bandwidth), (t4_tflops, t4_bandwidth) = found[1], DEVICES["T4"]
    return t4_tflops / tflops if family_name == "resnet" else t4_bandwidth / bandwidth


@dataclass(frozen=True)
class Rates:
    """Effective T4 TFLOP/s per family: ``inference`` (forward passes) and ``training`` (a step counted as
    TRAIN_STEP_FACTOR forwards), and where they come from."""

    inference: dict
    training: dict
    how: str = "estimated from published figures"


ESTIMATED = Rates(dict(T4_TFLOPS), dict(T4_TFLOPS))


def read_rates(path: str | os.PathLike) -> Rates:
    """The rates a GPU check (``python -m tests.gpu``) measured, carried to a T4; a family it did not measure
    keeps its estimate, and ``how`` says which is which."""
    path = Path(path)
    try:
        rates = json.loads(path.read_text())["rates"]
        device, measured = rates["device"], {kind: rates[f"{kind}_tflops"] for kind in ("inference", "training")}
    except FileNotFoundError:
        raise FileNotFoundError(f"rates {path}: no such file (python -m tests.gpu writes gpu-check.json)") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"rates {path}: not a GPU check's record with measured rates ({error!r})") from None
    if device_spec(device) is None:
        to_t4("", device)  # raises, naming the device
    carried = {kind: {f: float(measured[kind][f]) * to_t4(f, device) if f in measured[kind] else T4_TFLOPS[f]
                      for f in T4_TFLOPS} for kind in measured}
    guessed = sorted({f for kind in measured for f in T4_TFLOPS if f not in measured[kind]})
    factors = ", ".join(f"{f} x{to_t4(f, device):.3f}" for f in T4_TFLOPS)
    how = (f"measured on {device} ({path.name}) and carried to a T4 by {factors} ({DEVICES_SOURCE})"
           + (f"; {', '.join(guessed)} still estimated" if guessed else ""))
    return Rates(carried["inference"], carried["training"], how)


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


_FLOPS: dict = {}


def flops_cache() -> Path:
    """Counted FLOPs kept between runs (counting needs smp and torch: seconds to import, for a number that
    only changes with them): $XDG_CACHE_HOME/steelkit/flops.json, else ~/.cache/steelkit/flops.json."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "steelkit" / "flops.json"


def model_flops(recipe, shape: tuple[int, int] = IMAGE_SHAPE) -> float:
    """Floating-point operations of one forward pass on one image of ``shape`` (counted on torch's meta
    device: shapes only, no arithmetic, a fraction of a second), remembered in ``flops_cache``."""
    versions = [metadata.version(name) for name in ("torch", "segmentation-models-pytorch", "timm")]
    key = json.dumps([recipe.stage, recipe.arch, recipe.encoder, list(recipe.decoder_channels), recipe.head_pooling,
                      list(shape), versions])
    if not _FLOPS:
        try:
            _FLOPS.update(json.loads(flops_cache().read_text()))
        except (OSError, ValueError):
            pass  # no cache yet, or an unreadable one: count again
    if key not in _FLOPS:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from steelkit.models import build_model

        model = build_model(recipe, load_weights=False).eval().to("meta")
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, 3, *shape, device="meta"))
        _FLOPS[key] = float(counter.get_total_flops())
        try:
            atomic.write_text(flops_cache(), json.dumps(_FLOPS, indent=1) + "\n")
        except OSError:
            pass  # a read-only home: the count is simply made again next time
    return _FLOPS[key]


def train_step_flops(recipe, shape: tuple[int, int]) -> float:
    """FLOPs of one training step (forward and backward) on one crop of ``shape``: 3 x the counted forward."""
    return TRAIN_STEP_FACTOR * model_flops(recipe, shape)


def estimate(recipes, n_images: int, tta_modes: int = 3, tflops: float | None = None, gpus: int = KAGGLE_GPUS,
             shape: tuple[int, int] = IMAGE_SHAPE, rates: Rates | None = None) -> Estimate:
    """The submission kernel's time for an ensemble of ``recipes`` (both stages) on ``n_images``, from the
    family throughputs above, or measured ``rates`` (or one ``tflops`` for all)."""
    rates = rates or ESTIMATED
    cache: dict = {}
    total, seconds = 0.0, {}
    for recipe in recipes:
        if recipe not in cache:
            cache[recipe] = model_flops(recipe, shape)
        flop = cache[recipe] * tta_modes * n_images
        total += flop
        rate = (tflops or rates.inference[family(recipe)]) * 1e12 * gpus
        seconds[recipe.stage] = seconds.get(recipe.stage, 0.0) + flop / rate
    seconds["cpu"] = PER_IMAGE_SECONDS * n_images
    return Estimate(minutes=sum(seconds.values()) / 60, tflop=total / 1e12, images=n_images,
                    per_stage={stage: s / 60 for stage, s in seconds.items()},
                    how=f"estimated on {gpus} T4{'s' if gpus > 1 else ''}"
                        + (f" from rates {rates.how}" if rates is not ESTIMATED and not tflops else ""))


def measure(models, n_images: int, tta_modes: int = 3, batch_size: int = 8, device: str | None = None,
            shape: tuple[int, int] = IMAGE_SHAPE, repeats: int = 2) -> Estimate:
    """Time ``models`` ((model, stage) pairs, e.g. loaded checkpoints) on ``device``: one batch per TTA mode
    after a warm-up, extrapolated to ``n_images`` on this one device."""
    import torch

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    images = torch.zeros(batch_size, 3, *shape, device=device)
    seconds: dict[str, float] = {}
    for model, stage in models:
        model = model.to(device).eval()
        with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
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


@dataclass(frozen=True)
class TrainingEstimate:
    """One training kernel's time on Kaggle: seconds per part of the run, and what bounds an epoch."""

    name: str
    epochs: int
    train_epoch: float  # seconds of one epoch's training pass
    valid_epoch: float  # seconds of one epoch's validation on full images
    final: float  # the final full-resolution pass (segmenters), seconds
    startup: float
    bound: str  # "GPU" or "loader": the slower side of a training epoch
    how: str = f"estimated on Kaggle's {KAGGLE_GPUS} T4s"

    @property
    def epoch(self) -> float:
        return self.train_epoch + self.valid_epoch

    @property
    def seconds(self) -> float:
        return self.startup + self.epochs * self.epoch + self.final

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    def parts(self, cap_hours: float = SESSION_HOURS) -> list[int]:
        """Epochs per session so that every session (start-up, its epochs, the last one's final pass) fits
        ``cap_hours``; one part when the whole run fits."""
        cap = cap_hours * 3600
        if self.startup + self.epoch + self.final > cap:
            raise UserError(f"{self.name}: one epoch ({self.epoch / 3600:.1f} h with start-up and the final "
                            f"pass) does not fit a {cap_hours:g}-hour session")
        if self.seconds <= cap:
            return [self.epochs]
        per_part = int((cap - self.startup) // self.epoch)
        parts, left = [], self.epochs
        while left:
            take = min(per_part, left)
            if take == left and self.startup + take * self.epoch + self.final > cap:
                take = left - 1  # the last part also holds the final pass
            parts.append(take)
            left -= take
        return parts

    def __str__(self) -> str:
        return (f"{self.name}: {self.hours:.2f} h {self.how} ({self.epochs} epochs x "
                f"{units.duration(self.epoch)}, {self.bound}-bound; start-up {units.duration(self.startup)}"
                + (f", final pass {units.duration(self.final)}" if self.final else "") + ")")


def estimate_training(recipe, n_train: int, n_valid: int, gpus: int = KAGGLE_GPUS, tflops: float | None = None,
                      shape: tuple[int, int] = IMAGE_SHAPE, measured: dict | None = None,
                      rates: Rates | None = None) -> TrainingEstimate:
    """A training kernel's time on ``gpus`` T4s for ``n_train`` training rows (pseudo rows included) and
    ``n_valid`` validation images of ``shape``. ``measured`` ({"train_item", "valid_item"} GPU seconds per
    item on one device, {"loader_item"} one core's seconds per training item) replaces the assumptions;
    ``rates`` (a GPU check's, ``read_rates``) replaces the family throughputs."""
    measured, rates = measured or {}, rates or ESTIMATED
    crop = (recipe.crop_height or shape[0], recipe.crop_width or shape[1])
    train_rate = (tflops or rates.training[family(recipe)]) * 1e12
    valid_rate = (tflops or rates.inference[family(recipe)]) * 1e12
    scaling = gpus * (DDP_EFFICIENCY if gpus > 1 else 1.0)  # gradients all-reduced every step
    train_item = measured.get("train_item", train_step_flops(recipe, crop) / train_rate) / scaling
    valid_item = measured.get("valid_item", model_flops(recipe, shape) / valid_rate) / gpus  # no all-reduce
    loader_item = measured.get("loader_item", LOADER_SECONDS["train"]) / KAGGLE_CPU_CORES
    loader_full = LOADER_SECONDS["full"] * loader_item / LOADER_SECONDS["train"]
    gpu_epoch, loader_epoch = n_train * train_item, n_train * loader_item
    valid_epoch = n_valid * max(valid_item, loader_full)
    final = valid_epoch + n_valid * TABLES_SECONDS if recipe.stage == "segmenter" else 0.0
    startup = STARTUP_SECONDS + (n_train + n_valid) * DECODE_SECONDS / 4
    return TrainingEstimate(
        name=f"{recipe.name} fold {recipe.fold}", epochs=recipe.epochs, train_epoch=max(gpu_epoch, loader_epoch),
        valid_epoch=valid_epoch, final=final, startup=startup,
        bound="GPU" if gpu_epoch >= loader_epoch else "loader",
        how=("measured" if measured else "estimated") + f" on {gpus} T4{'s' if gpus > 1 else ''}"
            + (f" from rates {rates.how}" if rates is not ESTIMATED and not measured else ""))


def estimate_tuning(members: list[tuple], n_images: int, tta_modes: int = 3, gpus: int = KAGGLE_GPUS,
                    shape: tuple[int, int] = IMAGE_SHAPE, rates: Rates | None = None) -> float:
    """Seconds of the tuning kernel: every member (recipe, images it held out) predicts its held-out images
    with TTA at full resolution, then the ensemble's tables are labelled for ``n_images``; plus start-up."""
    rates = rates or ESTIMATED
    gpu = sum(images * tta_modes * model_flops(recipe, shape) / (rates.inference[family(recipe)] * 1e12 * gpus)
              for recipe, images in members)
    loader = n_images * (LOADER_SECONDS["full"] + DECODE_SECONDS) / KAGGLE_CPU_CORES  # not cached: decoded
    return STARTUP_SECONDS + max(gpu, loader) + n_images * TABLES_SECONDS


def measure_training(recipe, device: str | None = None, steps: int = 3, shape: tuple[int, int] = IMAGE_SHAPE,
                     batch_size: int | None = None) -> dict:
    """Time real training steps (mixed precision on CUDA) of ``recipe``'s model on random crops, and
    full-image forwards, after a warm-up -> {"train_item", "valid_item"} seconds per item on this device."""
    import torch

    from steelkit.losses import build_loss
    from steelkit.models import build_model
    from steelkit.train import build_optimizer, make_scaler

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch = batch_size or recipe.batch_size
    crop = (recipe.crop_height or shape[0], recipe.crop_width or shape[1])
    model = build_model(recipe, load_weights=False).to(device).train()
    optimizer, loss_fn = build_optimizer(model, recipe), build_loss(recipe).to(device)
    scaler = make_scaler(device, recipe)
    images = torch.rand(batch, 3, *crop, device=device)
    target = torch.zeros((batch, 4) if recipe.stage == "classifier" else (batch, 4, *crop), device=device)

    def step() -> None:
        with torch.autocast(device.type, enabled=device.type == "cuda" and recipe.amp):
            logits = model(images)
        scaler.scale(loss_fn(logits.float(), target)).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    train_item = _timed(step, steps, device) / batch
    model.eval()
    full = torch.rand(max(1, recipe.val_batch_size), 3, *shape, device=device)

    def forward() -> None:
        with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
            model(full)

    return {"train_item": train_item, "valid_item": _timed(forward, steps, device) / len(full)}


def _timed(work, repeats: int, device) -> float:
    """Seconds per call of ``work`` after one warm-up call (cudnn picks its kernels)."""
    import torch

    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / repeats


def measure_loader(recipe, image_paths: list, workers: int = 2, epochs: int = 2) -> float:
    """Core-seconds per training item of ``recipe``'s input pipeline as training runs it, through a
    ``workers``-worker DataLoader over the images cached in RAM (``image_paths``: real-sized JPEGs, empty
    labels): ``workers`` / items a second of the faster of ``epochs`` epochs after a warm-up. What
    ``LOADER_SECONDS["train"]`` assumes."""
    import tempfile

    from torch.utils.data import DataLoader

    from steelkit.augment import train_augment
    from steelkit.competition import agreed_shape, grayscale_is_exact
    from steelkit.datasets import EpochSampler, Sample, SteelDataset, worker_init_fn
    from steelkit.imagecache import ImageCache

    paths = list(image_paths)
    shape, grayscale = agreed_shape(paths, "images"), grayscale_is_exact(paths)
    with tempfile.TemporaryDirectory() as folder:
        cache = ImageCache.create(folder, paths, shape, 1 if grayscale else 3)
        cache.fill()
        dataset = SteelDataset([Sample(p, ("", "", "", "")) for p in paths] * 4, shape,
                               train_augment(recipe, shape), grayscale, cache, recipe.seed)
        sampler = EpochSampler(dataset, recipe.seed)
        loader = DataLoader(dataset, batch_size=recipe.batch_size, sampler=sampler, num_workers=workers,
                            worker_init_fn=worker_init_fn, persistent_workers=workers > 0)
        next(iter(loader))
        best = float("inf")
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            started = time.perf_counter()
            items = sum(len(batch["image"]) for batch in loader)
            best = min(best, (time.perf_counter() - started) / items)
        del loader
    return best * max(workers, 1)
