"""What only a GPU can show, in one command: ``python -m tests.gpu`` (``make gpu-check``).

On the GPU at hand, in about five minutes on an H200 (eight at most), it writes ``gpu-check.json`` (after
every section, so a killed run keeps what it measured) and prints a table:

- **training**: every full preset, about 30 optimiser steps through steelkit's own loop code
  (``train.train_one_epoch``: AMP, channels_last, accumulation, clipping) at the recipe's batch and crop, on
  random weights: images a second, peak GPU memory, achieved TFLOP/s; beside it the same model and batch in a
  plain loop (``torch.autocast``, ``GradScaler``, float inputs already on the device, nothing of steelkit):
  steelkit's loop should be no slower (NO_SLOWER);
- **loader**: the fastest preset fed by the cached loader (``train.make_loader``, the machine's cores) on
  synthetic 256 x 1600 steel: the share of a step that waits for data;
- **submission**: the seed's ensemble (4 classifiers, 6 segmenters, random weights) through ``predict`` with 3
  TTA modes on synthetic test images: images a second and the minutes for 5,506, beside ``budget.estimate``
  for one T4 and for this device; the achieved TFLOP/s per encoder family (the budget assumes the depthwise
  family at a quarter of the ResNets' rate);
- **paths** only CUDA runs: a CPU-saved ``last.pt`` resumed on CUDA with AMP and the reverse, AMP and
  channels_last against fp32 for a few steps, DDP over NCCL where there are two GPUs;
- **versions** it ran with beside Kaggle's image (``kernels/kaggle-image.txt``);
- **rates**: the measured TFLOP/s per family, which ``steelkit budget --rates`` and ``build_kernel.py plan
  --rates`` carry to Kaggle's T4s.

``--device cpu --tiny`` runs the same code in seconds on tiny presets (the test suite does), so the script
cannot rot between lent machines. Exit 1 when a section fails or a verdict says NO.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("cls-effb1", "cls-r34", "seg-unet-effb3", "seg-fpn-effb3", "seg-fpn-effb3-dice")
SEED_ENSEMBLE = (("cls-effb1", 3), ("cls-r34", 1), ("seg-unet-effb3", 1), ("seg-fpn-effb3-dice", 3),
                 ("seg-fpn-effb3", 2))  # the submission's members in kernels.json (a test keeps them equal)
TINY_ENSEMBLE = (("cls-r34", 1), ("seg-unet-effb3", 1))  # --tiny: one model of each stage and family
TTA = ("none", "hflip", "vflip")
TEST_IMAGES = 5506
# steelkit's loop at or above this share of the plain loop's images a second: two runs on an H200 read the same
# preset 0.92 and 1.01, 1.06 and 0.93 (launch-bound small batches), so the verdict allows that noise
NO_SLOWER = 0.90
AMP_TOLERANCE = 0.02  # relative difference of a step's loss, AMP + channels_last against fp32
WAITS = 0.10  # a loader that leaves the GPU waiting more than this share of a step is not keeping up
VERSIONS = {"python": None, "torch": "torch", "timm": "timm", "segmentation-models-pytorch":
            "segmentation-models-pytorch", "albumentations": "albumentations", "numpy": "numpy", "opencv": None}


@dataclass(frozen=True)
class Size:
    steps: int  # optimiser steps timed per preset
    warmup: int  # optimiser steps before the clock starts (cudnn picks its kernels)
    shape: tuple[int, int]  # the synthetic competition's images
    loader_images: int  # synthetic training images behind the loader check
    loader_items: int  # items a loader epoch serves (the images repeated, each item its own crop)
    test_images: tuple[int, int]  # the submission's two runs (the difference is timed: loading cancels)
    tiny: bool = False


FULL = Size(steps=30, warmup=3, shape=(256, 1600), loader_images=96, loader_items=2048, test_images=(16, 112))
TINY = Size(steps=2, warmup=1, shape=(64, 400), loader_images=12, loader_items=24, test_images=(2, 4), tiny=True)
TINY_ENCODERS = {"efficientnet-b1": "efficientnet-b0", "efficientnet-b3": "efficientnet-b0", "resnet34": "resnet18"}


def fit(recipe, size: Size):
    """The recipe as the check runs it: random weights, and in tiny mode its family's smallest encoder on
    small crops and batches."""
    recipe = dataclasses.replace(recipe, encoder_weights="", init_checkpoint="", pseudo_labels="")
    if size.tiny:
        recipe = dataclasses.replace(recipe, encoder=TINY_ENCODERS.get(recipe.encoder, recipe.encoder),
                                     batch_size=2, effective_batch=4, crop_height=32, crop_width=64,
                                     val_batch_size=2)
    return recipe


def crop_of(recipe, size: Size) -> tuple[int, int]:
    return (min(recipe.crop_height or size.shape[0], size.shape[0]),
            min(recipe.crop_width or size.shape[1], size.shape[1]))


def padded(shape: tuple[int, int]) -> tuple[int, int]:
    """``shape`` rounded up to a multiple of 32, as the models see it (256 x 1600 already is)."""
    return tuple(-(-side // 32) * 32 for side in shape)


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gb(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def batches(recipe, crop: tuple[int, int], count: int, pinned: bool) -> list[dict]:
    """Random uint8 batches as steelkit's loader makes them: (N, H, W, 1) images, packed masks, labels."""
    import torch

    generator = torch.Generator().manual_seed(0)
    made = []
    for _ in range(count):
        n = recipe.batch_size
        batch = {"image": torch.randint(0, 256, (n, *crop, 1), dtype=torch.uint8, generator=generator),
                 "mask": (torch.randint(0, 16, (n, *crop), dtype=torch.uint8, generator=generator)
                          * (torch.rand(n, *crop, generator=generator) < 0.05)).to(torch.uint8),
                 "labels": (torch.rand(n, 4, generator=generator) < 0.3).float()}
        made.append({k: v.pin_memory() for k, v in batch.items()} if pinned else batch)
    return made


def steelkit_model(recipe, device):
    import torch

    from steelkit.models import build_model

    torch.manual_seed(0)
    model = build_model(recipe, load_weights=False).to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" and recipe.channels_last else model


def steelkit_loop(recipe, device, size: Size, loader=None) -> dict:
    """Optimiser steps of steelkit's own loop (``train_one_epoch``) -> images a second, peak memory, losses.
    ``loader``: a real loader to feed it (its epochs are timed), else pinned random batches."""
    from steelkit import train
    from steelkit.distributed import Context
    from steelkit.losses import build_loss

    context = Context(device=device)
    accumulation = train.accumulation_steps(recipe)
    reset_peak(device)
    model = steelkit_model(recipe, device)
    optimizer, scaler = train.build_optimizer(model, recipe), train.make_scaler(device, recipe)
    loss_fn = build_loss(recipe).to(device)
    pool = batches(recipe, crop_of(recipe, size), 4, device.type == "cuda") if loader is None else None

    def run(steps: int, epoch: int) -> tuple[float, int, float]:
        """``steps`` optimiser steps of the random batches, or one epoch of ``loader``."""
        if loader is None:
            feed = [pool[i % len(pool)] for i in range(steps * accumulation)]
        else:
            loader.sampler.set_epoch(epoch)
            feed = loader
        synchronize(device)
        started = time.perf_counter()
        done = train.train_one_epoch(model, feed, loss_fn, optimizer, scaler, recipe, context, epoch,
                                     train.steps_in(len(feed), accumulation), "gpu check")
        synchronize(device)
        return time.perf_counter() - started, len(feed) * recipe.batch_size, done["train_loss"]

    if loader is None:
        run(size.warmup, 0)
        seconds, images, loss = run(size.steps, 0)
    else:
        run(1, 0)  # an epoch in which the workers start and every image reaches the cache's pages
        timed = [run(1, epoch) for epoch in (1, 2)]
        seconds, images, loss = min(timed)
    return {"images_per_s": images / seconds, "peak_gb": peak_gb(device), "loss": loss, "seconds": seconds}


def plain_loop(recipe, device, size: Size) -> dict:
    """The reference a competitor writes: the same model and batch, float inputs already on the device, a
    step per batch under ``torch.autocast`` with a ``GradScaler``, BCE; nothing of steelkit runs in it."""
    import torch

    from steelkit.models import build_model

    reset_peak(device)
    torch.manual_seed(0)
    model = build_model(recipe, load_weights=False).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = (torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, nesterov=True) if recipe.optimizer == "sgd"
                 else torch.optim.RAdam(params, lr=recipe.lr))
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    criterion = torch.nn.BCEWithLogitsLoss()
    crop, n = crop_of(recipe, size), recipe.batch_size
    images = torch.randn(n, 3, *crop, device=device)
    target = ((torch.rand(n, 4, device=device) < 0.3) if recipe.stage == "classifier"
              else (torch.rand(n, 4, *crop, device=device) < 0.05)).float()

    def run(steps: int) -> float:
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                loss = criterion(model(images), target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        synchronize(device)
        return time.perf_counter() - started

    accumulation = recipe.effective_batch // recipe.batch_size  # the same images as steelkit's steps
    run(size.warmup * accumulation)
    seconds = run(size.steps * accumulation)
    return {"images_per_s": size.steps * accumulation * n / seconds, "peak_gb": peak_gb(device)}


def check_training(device, size: Size, presets: tuple[str, ...] = PRESETS) -> list[dict]:
    from steelkit import budget
    from steelkit.recipe import preset

    rows = []
    for name in presets:
        recipe = fit(preset(name), size)
        crop = crop_of(recipe, size)
        ours, plain = steelkit_loop(recipe, device, size), plain_loop(recipe, device, size)
        contiguous = steelkit_loop(dataclasses.replace(recipe, channels_last=False), device, size)
        rows.append({"preset": name, "encoder": recipe.encoder, "family": budget.family(recipe),
                     "batch": recipe.batch_size, "effective_batch": recipe.effective_batch, "crop": list(crop),
                     "images_per_s": ours["images_per_s"], "peak_gb": ours["peak_gb"], "loss": ours["loss"],
                     "plain_images_per_s": plain["images_per_s"], "plain_peak_gb": plain["peak_gb"],
                     "ratio": ours["images_per_s"] / plain["images_per_s"],
                     "contiguous_images_per_s": contiguous["images_per_s"],
                     "tflops": budget.train_step_flops(recipe, crop) * ours["images_per_s"] / 1e12})
        print(f"  trained {name}: {ours['images_per_s']:.1f} images/s, plain loop {plain['images_per_s']:.1f}",
              flush=True)
    return rows


def check_loader(device, size: Size, training: list[dict], work: Path) -> dict:
    """The fastest preset fed by the cached loader, with the machine's cores, beside its rate on batches
    already in memory: the share of a step that waits for data."""
    import torch

    from steelkit import synthetic, train
    from steelkit.augment import train_augment
    from steelkit.competition import agreed_shape, grayscale_is_exact
    from steelkit.datasets import SteelDataset
    from steelkit.distributed import Context
    from steelkit.recipe import preset

    fastest = max(training, key=lambda row: row["images_per_s"])
    recipe = dataclasses.replace(fit(preset(fastest["preset"]), size), num_workers=-1, image_cache="on")
    data = synthetic.make(work / "loader-data", synthetic.SynthConfig(n_train=size.loader_images, n_test=1,
                                                                      height=size.shape[0], width=size.shape[1]))
    rows, _, _, _ = train.training_rows(recipe, data, work / "loader-out")
    paths = [row.image_path for row in rows]
    shape, grayscale = agreed_shape(paths, "training images"), grayscale_is_exact(paths)
    context = Context(device=device)
    cache = train.image_cache(recipe, paths, shape, grayscale, context, str(work / "loader-out"))
    samples = (rows * (size.loader_items // len(rows) + 1))[:size.loader_items]
    dataset = SteelDataset(samples, shape, train_augment(recipe, shape), grayscale, cache, recipe.seed)
    default = train.loader_workers(recipe.num_workers)
    fed_by = {}
    tried = {default} if size.tiny else {default, max(1, default - 1), max(1, default // 2)}
    for workers in sorted(tried, reverse=True):
        loader = train.make_loader(dataset, dataclasses.replace(recipe, num_workers=workers), context, train=True)
        fed_by[workers] = steelkit_loop(recipe, device, size, loader)["images_per_s"]
        del loader
    loader = train.make_loader(dataset, recipe, context, train=True)
    alone = []
    for epoch in (3, 4):  # the loader by itself: what it can serve when nothing waits on the GPU
        loader.sampler.set_epoch(epoch)
        started = time.perf_counter()
        items = sum(len(batch["image"]) for batch in loader)
        alone.append(items / (time.perf_counter() - started))
    del loader
    if cache is not None:
        cache.remove()
    wait = max(0.0, 1 - fed_by[default] / fastest["images_per_s"])
    return {"preset": fastest["preset"], "workers": default,
            "cores": os.cpu_count(), "images": len(rows), "items_per_epoch": len(samples),
            "fed_images_per_s": fed_by[default], "fed_by_workers": fed_by,
            "memory_images_per_s": fastest["images_per_s"],
            "loader_alone_items_per_s": max(alone), "wait_share": wait,
            "threads": torch.get_num_threads()}


def ensemble_of(size: Size) -> tuple:
    return TINY_ENSEMBLE if size.tiny else SEED_ENSEMBLE


def write_ensemble(size: Size, folder: Path) -> tuple[dict[str, list[Path]], list]:
    """The seed's ensemble as checkpoints of random weights: each model of each preset and fold -> (their
    paths by stage, their recipes)."""
    import torch

    from steelkit import checkpoint
    from steelkit.models import build_model
    from steelkit.recipe import preset

    paths: dict[str, list[Path]] = {"classifier": [], "segmenter": []}
    recipes = []
    for name, count in ensemble_of(size):
        for fold in range(count):
            recipe = dataclasses.replace(fit(preset(name), size), fold=fold)
            recipes.append(recipe)
            torch.manual_seed(fold)
            model = build_model(recipe, load_weights=False)
            paths[recipe.stage].append(checkpoint.save(folder / f"{name}-fold{fold}" / checkpoint.BEST, {
                "model": model.state_dict(), "recipe": dataclasses.asdict(recipe), "epoch": 0, "score": 0.0}))
    return paths, recipes


def forward_seconds(model, images, spatial: bool, repeats: int) -> float:
    """Seconds of ``repeats`` TTA forwards of ``images`` after a warm-up one."""
    import torch

    from steelkit import tta

    def forward():
        with torch.no_grad(), torch.autocast(images.device.type, enabled=images.device.type == "cuda"):
            tta.predict(model, images, TTA, spatial=spatial)

    forward()
    synchronize(images.device)
    started = time.perf_counter()
    for _ in range(repeats):
        forward()
    synchronize(images.device)
    return time.perf_counter() - started


def family_rates(device, size: Size) -> dict:
    """Achieved TFLOP/s of each encoder family: every distinct model of the ensemble, a batch of 8 full images
    with TTA, as ``Ensemble`` runs it (eval, autocast, channels_last on CUDA)."""
    import torch

    from steelkit import budget
    from steelkit.models import pad_to_multiple
    from steelkit.recipe import preset

    flop: dict[str, float] = {}
    seconds: dict[str, float] = {}
    repeats = 1 if size.tiny else 3
    for name, _ in ensemble_of(size):
        recipe = fit(preset(name), size)
        images, _ = pad_to_multiple(torch.rand(8, 3, *size.shape, device=device))  # as Ensemble pads them
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        key = budget.family(recipe)
        seconds[key] = seconds.get(key, 0.0) + forward_seconds(steelkit_model(recipe, device).eval(), images,
                                                               recipe.stage == "segmenter", repeats)
        flop[key] = flop.get(key, 0.0) + budget.model_flops(recipe, padded(size.shape)) * 8 * len(TTA) * repeats
    return {key: flop[key] / seconds[key] / 1e12 for key in flop}


def check_submission(device, size: Size, work: Path) -> dict:
    from steelkit import budget, predict, synthetic

    paths, recipes = write_ensemble(size, work / "ensemble")
    config = predict.InferenceConfig(tta=TTA, batch_size=8)
    seconds = []
    # a first run picks cudnn's kernels for every model (minutes of it would count in the small run only),
    # then two runs whose difference is the images alone: loading the models and starting the workers cancel
    for number, n in enumerate((size.test_images[0], *size.test_images)):
        data = synthetic.make(work / f"test-{number}", synthetic.SynthConfig(n_train=1, n_test=n,
                                                                             height=size.shape[0], width=size.shape[1]))
        started = time.perf_counter()
        predict.predict(data, paths["classifier"], paths["segmenter"], work / f"submission-{number}.csv", config,
                        device=str(device))
        seconds.append(time.perf_counter() - started)
    seconds = seconds[1:]
    if seconds[1] <= seconds[0]:
        raise RuntimeError(f"predict took {seconds[1]:.1f} s for {size.test_images[1]} images and {seconds[0]:.1f} s "
                           f"for {size.test_images[0]}: the difference cannot time an image")
    per_image = (seconds[1] - seconds[0]) / (size.test_images[1] - size.test_images[0])
    one_t4 = budget.estimate(recipes, TEST_IMAGES, len(TTA), gpus=1, shape=padded(size.shape))
    kaggle = budget.estimate(recipes, TEST_IMAGES, len(TTA), shape=padded(size.shape))
    rates = family_rates(device, size)
    here = {}
    if device.type == "cuda" and budget.device_spec(torch_name(device)):
        scaled = {f: rate / budget.to_t4(f, torch_name(device)) for f, rate in budget.T4_TFLOPS.items()}
        this_device = budget.estimate(recipes, TEST_IMAGES, len(TTA), gpus=1, shape=padded(size.shape),
                                      rates=budget.Rates(scaled, scaled))
        here = {"estimate_minutes_this_device": this_device.minutes}
    return {"models": {stage: len(found) for stage, found in paths.items()}, "tta": len(TTA),
            "images": list(size.test_images), "seconds": seconds, "images_per_s": 1 / per_image,
            "minutes_for_test_set": per_image * TEST_IMAGES / 60, "test_images": TEST_IMAGES,
            "estimate_minutes_one_t4": one_t4.minutes, "estimate_minutes_kaggle": kaggle.minutes, **here,
            "family_tflops": rates,
            "depthwise_to_resnet": rates["depthwise"] / rates["resnet"] if {"depthwise", "resnet"} <= set(rates)
            else None, "assumed_depthwise_to_resnet": budget.T4_TFLOPS["depthwise"] / budget.T4_TFLOPS["resnet"]}


def torch_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"


def check_paths(device, size: Size, work: Path) -> dict:
    """What only CUDA runs: resumes across devices, AMP against fp32, DDP over NCCL."""
    import torch

    from steelkit import checkpoint, launch, synthetic, train
    from steelkit.recipe import preset

    data = synthetic.make(work / "tiny-data", synthetic.SynthConfig(n_train=24, n_test=2, height=64, width=400,
                                                                    texture=0.3))
    recipe = dataclasses.replace(preset("seg-tiny"), epochs=2, batch_size=4, effective_batch=4, crop_height=64,
                                 crop_width=128, image_cache="off")
    cuda = device.type == "cuda"
    other = "cuda" if cuda else "cpu"
    result = {}
    for number, (first, second) in enumerate((("cpu", other), (other, "cpu"))):
        out = work / f"resume-{number}-{first}-{second}"
        train.train(recipe, data, out, epochs_now=1, device=first)
        done = train.train(recipe, data, out, resume=True, device=second)
        saved = checkpoint.load_state(out / checkpoint.LAST)
        ok = done["epochs_done"] == 2 and all(torch.isfinite(torch.tensor(row["train_loss"]))
                                              for row in done["history"])
        result[f"resume_{first}_to_{second}"] = {
            "ok": bool(ok), "epochs_done": done["epochs_done"], "scaler_saved": bool(saved["scaler"]),
            "losses": [row["train_loss"] for row in done["history"]],
            **({} if cuda else {"note": "no CUDA here: the CPU path alone"})}

    # a diverging run on this device (AMP's scaler where CUDA has it): Diverged, and no checkpoint of
    # non-finite weights left behind for prediction to read
    out = work / "diverging"
    try:
        train.train(dataclasses.replace(recipe, lr=1e30, grad_clip=0.0), data, out, device=str(device))
        said = ""
    except train.Diverged as error:
        said = str(error)
    refused = []
    for name in (checkpoint.BEST, checkpoint.LAST):
        if (out / name).exists():
            try:
                checkpoint.load_state(out / name)
            except ValueError as error:
                refused.append(f"{name}: {error}")
    result["diverging_run_stops"] = {"ok": bool(said) and not refused and "training diverged in epoch" in said,
                                     "said": said[:300], "non_finite_checkpoints": refused,
                                     "amp": cuda and recipe.amp}

    seg = fit(preset("seg-unet-effb3"), size)
    seg = dataclasses.replace(seg, batch_size=4, effective_batch=4, crop_height=128 if not size.tiny else 32,
                              crop_width=256 if not size.tiny else 64)
    losses = {}
    for label, variant in (("fp32", dataclasses.replace(seg, amp=False, channels_last=False)), ("amp", seg)):
        from steelkit.losses import build_loss

        model = steelkit_model(variant, device)
        optimizer, scaler = train.build_optimizer(model, variant), train.make_scaler(device, variant)
        loss_fn = build_loss(variant).to(device)
        losses[label] = []
        for batch in batches(variant, crop_of(variant, size), 4, False):
            loss = train.backward_step(model, batch, loss_fn, scaler, variant, device, 1)
            train.optimizer_step(model, optimizer, scaler, variant.lr, variant.grad_clip)
            losses[label].append(float(loss))
    worst = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(losses["amp"], losses["fp32"]))
    result["amp_matches_fp32"] = {"ok": worst <= AMP_TOLERANCE, "max_relative_difference": worst,
                                  "tolerance": AMP_TOLERANCE, "losses": losses, "amp": cuda}

    gpus = torch.cuda.device_count() if cuda else 0
    if gpus >= 2:
        out = work / "ddp"
        launch.run_distributed(recipe, data, out, processes=2, device="cuda", echo=lambda line: None)
        result["ddp_nccl"] = {"ok": checkpoint.read_run(out)["finished"], "processes": 2}
    else:
        result["ddp_nccl"] = {"ok": None, "skipped": f"{gpus} GPU{'s' if gpus != 1 else ''}: DDP over NCCL needs two"}
    return result


def kaggle_versions() -> dict:
    """The versions Kaggle's image ships (kernels/kaggle-image.txt), and the pins steelkit's wheels install."""
    found = {}
    for line in (ROOT / "kernels" / "kaggle-image.txt").read_text().splitlines():
        if line.startswith("python:"):
            found["python"] = line.split(":", 1)[1].split("->")[0].strip()
        elif line.startswith("ships:") and "==" in line:
            name, version = line.split(":", 1)[1].split("->")[0].strip().split("==")
            found["opencv" if name.startswith("opencv") else name] = version.strip()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name in VERSIONS and name not in found:
            found[name] = version.strip() + " (steelkit's wheels)"
    return found


def versions() -> dict:
    import cv2

    kaggle = kaggle_versions()
    here = {"python": platform.python_version(), "opencv": cv2.__version__}
    for key, distribution in VERSIONS.items():
        if distribution:
            try:
                here[key] = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                here[key] = None
    return {key: {"here": here.get(key), "kaggle": kaggle.get(key)} for key in VERSIONS}


def rates_of(record: dict) -> dict:
    """Measured TFLOP/s per family: inference from the submission's forwards, training from the presets'
    steps (a family's total FLOPs over its total time)."""
    training: dict[str, list[float]] = {}
    for row in record.get("training", []):
        flop_s = row["tflops"]
        training.setdefault(row["family"], []).append(flop_s)
    return {"device": record["device"]["name"], "device_type": record["device"]["type"],
            "inference_tflops": record.get("submission", {}).get("family_tflops", {}),
            "training_tflops": {f: sum(v) / len(v) for f, v in training.items()}}


def verdicts(record: dict) -> list[tuple[str, bool | None, str]]:
    """(what, passed or None where it cannot be judged here, figures)."""
    cuda = record["device"]["type"] == "cuda"
    found = []
    for row in record.get("training", []):
        found.append((f"{row['preset']}: steelkit's loop no slower than the plain loop",
                      row["ratio"] >= NO_SLOWER if cuda else None,
                      f"{row['images_per_s']:.1f} vs {row['plain_images_per_s']:.1f} images/s ({row['ratio']:.2f}x)"))
    if "loader" in record:
        loader = record["loader"]
        found.append((f"loader keeps {loader['preset']} fed ({loader['workers']} workers)",
                      loader["wait_share"] <= WAITS if cuda else None,
                      f"{loader['wait_share']:.0%} of a step waits for data"))
    for name, path in record.get("paths", {}).items():
        detail = path.get("skipped") or (f"max relative difference {path['max_relative_difference']:.2e}"
                                         if "max_relative_difference" in path else
                                         path["said"][:100] or "no error raised" if "said" in path else
                                         f"{path.get('epochs_done')} epochs, losses {path.get('losses')}")
        found.append((name.replace("_", " "), path["ok"], detail))
    for section, error in record.get("errors", {}).items():
        found.append((f"{section} ran", False, error.splitlines()[-1][:160]))
    return found


def table(record: dict) -> str:
    lines = [f"GPU check on {record['device']['name']} ({record['device']['type']}, {record['size']}): "
             f"{record.get('seconds', 0):.0f} s"]
    if record.get("training"):
        lines.append(f"{'preset':20} {'encoder':16} {'img/s':>8} {'plain':>8} {'ratio':>6} {'peak GB':>8} "
                     f"{'TFLOP/s':>8} {'NCHW':>8}")
        for row in record["training"]:
            peak = f"{row['peak_gb']:.1f}" if row["peak_gb"] is not None else "-"
            lines.append(f"{row['preset']:20} {row['encoder']:16} {row['images_per_s']:8.1f} "
                         f"{row['plain_images_per_s']:8.1f} {row['ratio']:6.2f} {peak:>8} {row['tflops']:8.2f} "
                         f"{row['contiguous_images_per_s']:8.1f}")
    if "submission" in record:
        sub = record["submission"]
        lines.append(f"submission: {sub['images_per_s']:.1f} images/s, {sub['minutes_for_test_set']:.1f} min for "
                     f"{sub['test_images']} test images here; budget.estimate: {sub['estimate_minutes_one_t4']:.1f} "
                     f"min on one T4, {sub['estimate_minutes_kaggle']:.1f} on Kaggle's two"
                     + (f", {sub['estimate_minutes_this_device']:.1f} on this device"
                        if "estimate_minutes_this_device" in sub else ""))
        lines.append("family TFLOP/s (inference): " + ", ".join(f"{k} {v:.2f}" for k, v in sub["family_tflops"].items())
                     + (f"; depthwise/resnet {sub['depthwise_to_resnet']:.2f} (assumed "
                        f"{sub['assumed_depthwise_to_resnet']:.2f})" if sub["depthwise_to_resnet"] else ""))
    if "loader" in record:
        loader = record["loader"]
        lines.append(f"loader: {loader['fed_images_per_s']:.1f} images/s fed by {loader['workers']} workers "
                     f"(alone {loader['loader_alone_items_per_s']:.0f} items/s) against "
                     f"{loader['memory_images_per_s']:.1f} from memory; by workers: "
                     + ", ".join(f"{k}: {v:.1f}" for k, v in loader["fed_by_workers"].items()))
    if "versions" in record:
        lines.append("versions (here / Kaggle): " + ", ".join(f"{k} {v['here']} / {v['kaggle']}"
                                                               for k, v in record["versions"].items()))
    for what, passed, detail in verdicts(record):
        mark = "ok" if passed else ("NO" if passed is False else "--")
        lines.append(f"  [{mark}] {what}: {detail}")
    return "\n".join(lines)


def run(device_name: str, size: Size, out: Path, sections: tuple[str, ...], presets: tuple[str, ...] = PRESETS) -> dict:
    import torch

    from steelkit import atomic

    device = torch.device(device_name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as training and predict set it
    record = {"device": {"name": torch_name(device), "type": device.type,
                         "count": torch.cuda.device_count() if device.type == "cuda" else 0,
                         "cpu_cores": os.cpu_count(), "torch": torch.__version__},
              "size": "tiny" if size.tiny else "full", "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "errors": {}}
    began = time.perf_counter()

    def save() -> None:
        record["seconds"] = time.perf_counter() - began
        record["rates"] = rates_of(record)
        atomic.write_text(out, json.dumps(record, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        work = Path(folder)
        steps = {"versions": lambda: versions(),
                 "training": lambda: check_training(device, size, presets),
                 "loader": lambda: check_loader(device, size, record["training"], work),
                 "submission": lambda: check_submission(device, size, work),
                 "paths": lambda: check_paths(device, size, work)}
        for section in sections:
            if section == "loader" and not record.get("training"):
                record["errors"][section] = "skipped: needs the training section's rates"
                continue
            print(f"{section}...", flush=True)
            started = time.perf_counter()
            try:
                record[section] = steps[section]()
            except Exception:  # one failing section must not lose the others' figures
                record["errors"][section] = traceback.format_exc(limit=-3)
                print(record["errors"][section], file=sys.stderr, flush=True)
            record.setdefault("section_seconds", {})[section] = time.perf_counter() - started
            save()
    return record


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="cuda (default where there is one) or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny presets and data: the script checked in seconds")
    parser.add_argument("--out", default="gpu-check.json")
    parser.add_argument("--only", nargs="+", choices=("versions", "training", "loader", "submission", "paths"),
                        help="these sections only")
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=PRESETS, help="train these presets only")
    args = parser.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else None)
    if device is None:
        print("gpu check: no CUDA device here; `--device cpu --tiny` checks the script itself", file=sys.stderr)
        return 2
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu check: --device {device}, but torch sees no CUDA device", file=sys.stderr)
        return 2
    os.environ.setdefault("TQDM_MININTERVAL", "60")  # a table at the end, not a flood of bars
    sections = tuple(args.only or ("versions", "training", "loader", "submission", "paths"))
    record = run(device, TINY if args.tiny else FULL, Path(args.out), sections, tuple(args.presets))
    print(table(record))
    print(f"wrote {args.out}")
    return 1 if any(passed is False for _, passed, _ in verdicts(record)) else 0


if __name__ == "__main__":
    sys.exit(main())
