"""The training loop for both stages: one loop, no framework.

Gradient accumulation to an effective batch, mixed precision and channels_last on CUDA only, DDP under
torchrun, validation every epoch (Kaggle mean Dice of the segmenter's masks after the default
post-processing; per-class accuracy/F1 and the gated-oracle Dice for the classifier), the best
checkpoint kept by that figure, a full checkpoint every epoch that ``resume=True`` continues from,
out-of-fold probabilities and a metrics CSV.

Each epoch reseeds every random source from (seed, epoch), so a resumed run ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm.auto import tqdm

from steelkit import atomic, checkpoint, distributed, folds, metric
from steelkit.augment import eval_transform, train_transform
from steelkit.competition import image_shape, read_labels
from steelkit.datasets import SteelDataset, check_images, samples_from_table, worker_init_fn
from steelkit.losses import build_loss
from steelkit.models import build_model, pad_to_multiple
from steelkit.postprocess import PostprocessConfig, clean_mask
from steelkit.recipe import Recipe


def build_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD (classifier) or RAdam (segmenter) from torch, as the recipe says."""
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                               nesterov=recipe.momentum > 0)
    if recipe.optimizer == "radam":
        return torch.optim.RAdam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup_steps`` optimiser steps, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer, recipe: Recipe, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    total = recipe.epochs * steps_per_epoch
    warmup = int(round(recipe.warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total, recipe.min_lr_ratio))


def target_of(batch: dict, stage: str) -> torch.Tensor:
    return batch["labels"] if stage == "classifier" else batch["mask"]


def backward_step(model, batch: dict, loss_fn, scaler, recipe: Recipe, device: torch.device) -> float:
    """Forward and backward one micro-batch, the loss divided by the accumulation steps; returns the loss."""
    images = batch["image"].to(device, non_blocking=True)
    target = target_of(batch, recipe.stage).to(device, non_blocking=True)
    if device.type == "cuda" and recipe.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, enabled=device.type == "cuda" and recipe.amp):
        logits = model(images)
    loss = loss_fn(logits.float(), target)
    scaler.scale(loss / recipe.accumulation_steps).backward()
    return float(loss.detach())


def optimizer_step(model, optimizer, scaler, scheduler, grad_clip: float) -> None:
    """nanoGPT's idiom: unscale, clip, step, update, zero the gradients."""
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()


def train_one_epoch(model, loader, loss_fn, optimizer, scheduler, scaler, recipe, context, desc) -> float:
    """One pass over ``loader``, stepping every ``accumulation_steps`` micro-batches; mean loss."""
    model.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not context.main)
    for i, batch in enumerate(bar):
        stepping = (i + 1) % recipe.accumulation_steps == 0 or i + 1 == len(loader)
        # under DDP, gradients are all-reduced only on the micro-batch that steps
        sync = contextlib.nullcontext() if stepping or not context.distributed else model.no_sync()
        with sync:
            loss = backward_step(model, batch, loss_fn, scaler, recipe, context.device)
        if stepping:
            optimizer_step(model, optimizer, scaler, scheduler, recipe.grad_clip)
        total, count = total + loss, count + 1
        bar.set_postfix(loss=f"{total / count:.4f}")
    return total / max(count, 1)


@torch.no_grad()
def validate(model, loader, loss_fn, recipe: Recipe, device: torch.device) -> dict:
    """Validation figures and out-of-fold probabilities (see the module docstring)."""
    model.eval()
    losses, probs_out, dice, labels, cls_probs = [], [], [], [], []
    for batch in tqdm(loader, desc="validate", leave=False):
        images, target = batch["image"].to(device), target_of(batch, recipe.stage).to(device)
        padded, (height, width) = pad_to_multiple(images)
        with torch.autocast(device.type, enabled=device.type == "cuda" and recipe.amp):
            logits = model(padded)
        logits = logits.float()
        if recipe.stage == "segmenter":
            logits = logits[..., :height, :width]
            probs = logits.sigmoid()
            dice.append(metric.dice_masks(target.cpu().numpy(), clean_masks(probs.cpu().numpy())))
            small = torch.nn.functional.avg_pool2d(probs, recipe.oof_scale) if recipe.oof_scale > 1 else probs
            probs_out.append((small * 255).round().to(torch.uint8).cpu())
        else:
            cls_probs.append(logits.sigmoid().cpu())
            labels.append(target.cpu())
        losses.append(float(loss_fn(logits, target)) * len(images))
    n = len(loader.dataset)
    figures = {"val_loss": sum(losses) / max(n, 1)}
    if recipe.stage == "segmenter":
        pairs = np.concatenate(dice)
        summary = metric.summarize(pairs)
        figures.update({"score": summary["mean"], **{f"dice_{k}": v for k, v in summary.items() if k != "mean"}})
        return {"figures": figures, "oof": {"seg_probs": torch.cat(probs_out).numpy()}}
    probs, truth = torch.cat(cls_probs).numpy(), torch.cat(labels).numpy() > 0.5
    figures.update(classifier_figures(probs, truth))
    return {"figures": figures, "oof": {"cls_probs": probs.astype(np.float32)}}


def clean_masks(probs: np.ndarray) -> np.ndarray:
    """(N, 4, H, W) probabilities -> masks after the seed's default post-processing without the classifier's
    gating: the segmenter's validation Dice is scored on what a submission would keep, so that speckles on
    empty images count against it as they would on the leaderboard."""
    config = PostprocessConfig().for_shape(probs.shape[-2:])
    return np.stack([[clean_mask(p[k], config.pixel_thresholds[k], config.min_component_px[k],
                                 config.min_total_px[k]) for k in range(4)] for p in probs])


def classifier_figures(probs: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> dict:
    """Per-class accuracy and F1 of (N, 4) probabilities, and the gated-oracle Dice.

    Gated-oracle Dice: the Kaggle mean Dice if every mask came from a perfect segmenter that cannot tell
    absence, with this classifier deciding presence: a pair scores 1 when the call is right and 0 when it
    is not (a missed defect scores 0; a false alarm gets a non-empty mask on an empty pair, also 0).
    """
    pred = probs > threshold
    figures = {"score": float((pred == truth).mean())}
    for k in range(truth.shape[1]):
        tp = float((pred[:, k] & truth[:, k]).sum())
        fp, fn = float((pred[:, k] & ~truth[:, k]).sum()), float((~pred[:, k] & truth[:, k]).sum())
        figures[f"acc_{k + 1}"] = float((pred[:, k] == truth[:, k]).mean())
        figures[f"f1_{k + 1}"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return figures


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(recipe: Recipe, epoch: int) -> int:
    return recipe.seed * 100_003 + epoch


def find_folds(data_dir: Path, out_dir: Path, table: pd.DataFrame, recipe: Recipe) -> pd.DataFrame:
    """The folds CSV in the data folder if there is one, else in the output folder, else new folds saved
    to the output folder (the data folder may be read-only, as /kaggle/input is)."""
    for folder in (data_dir, out_dir):
        if (folder / "folds.csv").is_file():
            made = folds.read_folds(folder / "folds.csv", table)
            if made["fold"].max() + 1 == recipe.n_folds:
                return made
    return folds.load_or_make(table, out_dir / "folds.csv", recipe.n_folds, recipe.folds_seed)


def training_rows(recipe: Recipe, data_dir: Path, out_dir: Path, shape):
    """(train samples, validation samples, validation image ids) for the recipe's fold, with pseudo rows."""
    from steelkit.pseudo import read_pseudo_labels

    table = read_labels(data_dir / "train.csv", data_dir / "train_images")
    fold_of = find_folds(data_dir, out_dir, table, recipe).set_index("ImageId")["fold"]
    in_valid = table["ImageId"].map(fold_of).to_numpy() == recipe.fold
    train = samples_from_table(table[~in_valid], data_dir / "train_images")
    for path in filter(None, (p.strip() for p in recipe.pseudo_labels.split(","))):
        train += samples_from_table(read_pseudo_labels(path), data_dir / "test_images", pseudo=True)
    valid = samples_from_table(table[in_valid], data_dir / "train_images")
    return train, valid, table["ImageId"][in_valid].tolist()


def make_loader(dataset, recipe: Recipe, context, epoch: int, train: bool) -> DataLoader:
    generator = torch.Generator().manual_seed(epoch_seed(recipe, epoch))
    if not train:
        sampler = None
    elif context.distributed:
        sampler = DistributedSampler(dataset, context.world_size, context.rank, shuffle=True, seed=recipe.seed)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=generator)
    return DataLoader(dataset, batch_size=recipe.batch_size if train else recipe.val_batch_size, sampler=sampler,
                      num_workers=recipe.num_workers, worker_init_fn=worker_init_fn, generator=generator,
                      pin_memory=context.device.type == "cuda",
                      drop_last=train and len(dataset) > recipe.batch_size)


def train(recipe: Recipe, data_dir: str | os.PathLike, out_dir: str | os.PathLike, resume: bool = False,
          epochs_now: int | None = None, device: str | None = None) -> dict:
    """Train one model as ``recipe`` says; return the best validation figures and the output paths.

    ``epochs_now`` stops after that many epochs in this call (a session's time budget); a later call
    with ``resume=True`` goes on from ``last.pt``.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    context = distributed.setup(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / checkpoint.LAST).exists() and not resume:
        raise FileExistsError(f"{out_dir} already holds a training run; resume it (--resume) or choose another --out")

    shape = image_shape(data_dir / "train_images")
    train_samples, valid_samples, valid_ids = training_rows(recipe, data_dir, out_dir, shape)
    if context.main:
        check_images([s.image_path for s in train_samples + valid_samples], shape)
    train_set = SteelDataset(train_samples, shape, train_transform(recipe, shape))
    valid_set = SteelDataset(valid_samples, shape, eval_transform())

    seed_everything(recipe.seed)
    model = build_model(recipe).to(context.device)
    if context.device.type == "cuda" and recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = DistributedDataParallel(model, device_ids=[context.device] if context.device.type == "cuda" else None) \
        if context.distributed else model
    optimizer = build_optimizer(model, recipe)
    steps_per_epoch = math.ceil(len(make_loader(train_set, recipe, context, 0, True)) / recipe.accumulation_steps)
    scheduler = build_scheduler(optimizer, recipe, steps_per_epoch)
    scaler = torch.amp.GradScaler(context.device.type, enabled=context.device.type == "cuda" and recipe.amp)
    loss_fn = build_loss(recipe).to(context.device)

    start, best, history = 0, (-math.inf, -math.inf), []
    if resume and (out_dir / checkpoint.LAST).exists():
        state = checkpoint.load_state(out_dir / checkpoint.LAST)
        if Recipe.from_dict(state["recipe"]) != recipe:
            raise ValueError(f"{out_dir / checkpoint.LAST} was made by another recipe; resume with the same one")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        checkpoint.set_rng_state(state["rng"])
        start, best, history = state["epoch"] + 1, tuple(state["best"]), state["history"]
    if context.main:
        recipe.save(out_dir / "recipe.json")

    ran = 0
    for epoch in range(start, recipe.epochs):
        if epochs_now is not None and ran >= epochs_now:
            break
        started = time.time()
        seed_everything(epoch_seed(recipe, epoch))
        train_set.transform.set_random_seed(epoch_seed(recipe, epoch))
        loader = make_loader(train_set, recipe, context, epoch, train=True)
        desc = f"{recipe.name} fold {recipe.fold} epoch {epoch + 1}/{recipe.epochs}"
        train_loss = train_one_epoch(net, loader, loss_fn, optimizer, scheduler, scaler, recipe, context, desc)
        if context.main:
            result = validate(model, make_loader(valid_set, recipe, context, epoch, train=False), loss_fn,
                              recipe, context.device)
            row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
                   **result["figures"], "seconds": time.time() - started}
            history.append(row)
            atomic.write_csv(pd.DataFrame(history), out_dir / "metrics.csv")
            if (row["score"], -row["val_loss"]) > best:  # ties (common early on) go to the lower loss
                best = (row["score"], -row["val_loss"])
                checkpoint.save(out_dir / checkpoint.BEST, {
                    "model": model.state_dict(), "recipe": dataclasses.asdict(recipe), "epoch": epoch,
                    "score": row["score"], "figures": row})
                save_oof(out_dir / "oof.npz", valid_ids, result["oof"], recipe, shape)
            checkpoint.save(out_dir / checkpoint.LAST, {
                "model": model.state_dict(), "recipe": dataclasses.asdict(recipe), "epoch": epoch, "best": best,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": checkpoint.rng_state(), "history": history})
            tqdm.write(f"{desc}: train loss {train_loss:.4f}, val loss {row['val_loss']:.4f}, "
                       f"score {row['score']:.4f} (best {best[0]:.4f}), {row['seconds']:.0f}s")
        distributed.barrier(context)
        ran += 1
    distributed.teardown(context)
    return {"best_score": best[0], "out": out_dir, "epochs_done": start + ran, "history": history}


def save_oof(path: Path, image_ids: list[str], oof: dict, recipe: Recipe, shape) -> Path:
    """Out-of-fold probabilities of the best epoch, compact: ``seg_probs`` (N, 4, H/s, W/s) uint8 =
    round(255 * p), averaged over s x s blocks (s = ``oof_scale``), or ``cls_probs`` (N, 4) float32;
    with ``image_ids``, ``scale`` and the full image ``shape``."""
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, image_ids=np.array(image_ids), scale=recipe.oof_scale, shape=np.array(shape),
                     stage=recipe.stage, **oof)
    return path


def train_in_kernel(preset_name: str, fold: int, overrides: list[str] = (), encoder_weights: str = "",
                    init_from: str = "", pseudo_labels: str = "", resume_from: str = "",
                    epochs_now: int | None = None) -> dict:
    """What a training notebook does: the preset with its overrides, every input named relative to the
    attached inputs (/kaggle/input on Kaggle), the output in <working>/<preset>-fold<k>. ``resume_from``
    names an attached earlier output of the same notebook to continue from."""
    import shutil

    from steelkit import paths
    from steelkit.recipe import override, preset

    inputs = paths.input_dir()
    out_dir = paths.working_dir() / f"{preset_name}-fold{fold}"
    changes = [f"fold={fold}", *overrides]
    for field, value in (("encoder_weights", encoder_weights), ("pseudo_labels", pseudo_labels)):
        if value:
            changes.append(f"{field}={inputs / value}")
    if init_from:
        changes.append(f"init_checkpoint={inputs / init_from / checkpoint.BEST}")
    if resume_from:
        shutil.copytree(inputs / resume_from / out_dir.name, out_dir, dirs_exist_ok=True)
    result = train(override(preset(preset_name), changes), paths.find_data_dir(), out_dir,
                   resume=bool(resume_from), epochs_now=epochs_now)
    return {**result, "metrics": pd.read_csv(out_dir / "metrics.csv")}
