"""The training loop for both stages: one loop, no framework.

Gradient accumulation to an effective batch, mixed precision and channels_last on CUDA only, DDP under
torchrun, validation every epoch (``steelkit.validation``), the best checkpoint kept by its figure, a
full checkpoint every epoch that ``resume=True`` continues from, out-of-fold probabilities and a metrics
CSV.

Several processes (DDP): the effective batch is the recipe's whatever their number,
``effective_batch = batch_size x accumulation steps x world size`` (refused when it does not divide).
The learning rate is a function of the fraction of the run done (epoch + step / steps per epoch), not of
a stored step count, so a run resumed with another number of processes keeps the schedule's shape.

Randomness: each epoch reseeds torch's, numpy's and Python's sources from (seed, epoch, rank) (dropout), the
shuffle follows (seed, epoch), and every item draws its augmentation from (seed, epoch, index) alone
(``steelkit.augment``): reproducible from the seed whatever the number of workers, and a resumed run ends
with the same weights as an uninterrupted one. No RNG state is stored, so ``last.pt`` resumes on any number
of GPUs.

Input: the loaders are made once (their workers persist), batches travel as uint8 and become the model's
input on the device (``steelkit.model_input``); the decoded images are cached in RAM
(``steelkit.imagecache``) where they fit.
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
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from steelkit import atomic, checkpoint, distributed, folds, imagecache, oof, timelimit, units, validation
from steelkit.augment import train_augment
from steelkit.competition import agreed_shape, grayscale_is_exact, read_labels
from steelkit.datasets import (
    EpochSampler,
    SteelDataset,
    check_images,
    check_labels,
    loader_workers,
    samples_from_table,
    worker_init_fn,
)
from steelkit.errors import UserError
from steelkit.losses import build_loss
from steelkit.masks import unpack
from steelkit.model_input import model_input
from steelkit.models import build_model, freeze_unused
from steelkit.pseudo import read_pseudo_labels
from steelkit.recipe import Recipe

# Fields a resumed run may change: more (or fewer) epochs, a common wish (the schedule is then stretched
# over the new length from where the run stands), what only affects data loading and validation
# batching, and the folds file's path (it moves with its folder, e.g. a Kaggle output attached elsewhere;
# the folds it holds are checked against n_folds and folds_seed, which may not change). Anything else would
# make the resumed run a different run than its recipe.json says.
RESUMABLE_CHANGES = ("epochs", "num_workers", "val_batch_size", "folds_file", "image_cache")
# Files named by path: the same file may be mounted elsewhere in the next session (another machine, another
# input folder), so a resumed run compares their names, not their folders
PATH_FIELDS = ("encoder_weights", "init_checkpoint", "pseudo_labels")


def _same(field: str, saved, new) -> bool:
    if field in PATH_FIELDS:
        return [Path(p.strip()).name for p in saved.split(",")] == [Path(p.strip()).name for p in new.split(",")]
    return saved == new


def check_resumable(saved: Recipe, recipe: Recipe, path: Path) -> None:
    """Raise naming every field that differs between the run in ``path`` and ``recipe``, unless all of
    them are RESUMABLE_CHANGES (files named by path: by their names alone)."""
    differ = [f.name for f in dataclasses.fields(Recipe)
              if not _same(f.name, getattr(saved, f.name), getattr(recipe, f.name))]
    refused = [name for name in differ if name not in RESUMABLE_CHANGES]
    if refused:
        changes = ", ".join(f"{n} {getattr(saved, n)!r} -> {getattr(recipe, n)!r}" for n in refused)
        raise UserError(f"{path} was made by another recipe ({changes}); a resumed run may change only "
                        f"{', '.join(RESUMABLE_CHANGES)}")


def build_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (the classifiers), RAdam (the segmenters) or AdamW (the tiny presets), from
    torch, as the recipe says."""
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                               nesterov=recipe.nesterov and recipe.momentum > 0)
    if recipe.optimizer == "radam":
        return torch.optim.RAdam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup_steps`` optimiser steps, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def learning_rate(recipe: Recipe, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The rate of optimiser step ``step`` of epoch ``epoch``: a function of the fraction of the run done,
    so that it does not depend on how many processes share the work."""
    warmup = int(round(recipe.warmup_epochs * steps_per_epoch))
    return recipe.lr * lr_factor(epoch * steps_per_epoch + step, warmup, recipe.epochs * steps_per_epoch,
                                 recipe.min_lr_ratio)


def accumulation_steps(recipe: Recipe, world_size: int = 1) -> int:
    """Micro-batches per optimiser step so that batch_size x steps x world_size = the recipe's effective batch."""
    per_step = recipe.batch_size * world_size
    if recipe.effective_batch % per_step:
        raise UserError(f"recipe {recipe.name!r}: effective_batch {recipe.effective_batch} is not a multiple of "
                        f"batch_size {recipe.batch_size} x {world_size} processes; choose batch_size or "
                        f"effective_batch so that it is (--set batch_size=... / effective_batch=...)")
    return recipe.effective_batch // per_step


def steps_in(n_batches: int, accumulation: int) -> int:
    """Optimiser steps in an epoch of ``n_batches`` micro-batches (the last, partial group steps too)."""
    return math.ceil(n_batches / accumulation)


def backward_step(model, batch: dict, loss_fn, scaler, recipe: Recipe, device: torch.device,
                  accumulation: int) -> torch.Tensor:
    """Forward and backward one micro-batch, the loss divided by the accumulation steps; returns the
    detached loss on the device (reading it would wait for the GPU)."""
    images = model_input(batch["image"], device, device.type == "cuda" and recipe.channels_last)
    target = batch["labels"].to(device, non_blocking=True) if recipe.stage == "classifier" \
        else unpack(batch["mask"], device)
    with torch.autocast(device.type, enabled=device.type == "cuda" and recipe.amp):
        logits = model(images)
    loss = loss_fn(logits.float(), target.float())  # masks travel as uint8, float only on the device
    scaler.scale(loss / accumulation).backward()
    return loss.detach()


def optimizer_step(model, optimizer, scaler, lr: float, grad_clip: float) -> None:
    """nanoGPT's idiom: set the rate, unscale, clip, step, update, zero the gradients."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


DIVERGED_STREAK = 20  # micro-batches in a row with a non-finite loss: not AMP's odd skipped step, a dead run


class Diverged(UserError):
    """The losses stopped being finite: the run stops before saving the epoch, whose weights are lost."""


def diverged(recipe: Recipe, epoch: int, step: int, loss: float, streak: int, where: str, out_dir: Path) -> Diverged:
    return Diverged(
        f"{recipe.name} fold {recipe.fold}: training diverged in epoch {epoch + 1}, step {step}: {where} loss "
        f"{loss}" + (f" ({streak} micro-batches in a row)" if streak else "") + ". Usual causes: a learning rate "
        f"too high (lr {recipe.lr:g}" + (f", grad_clip {recipe.grad_clip:g}" if recipe.grad_clip else ", no "
        "gradient clipping") + "), mixed precision overflowing (amp on CUDA: try --set amp=false), or labels "
        "that are wrong (a pseudo-label file, masks outside the image). Nothing of this epoch was saved: "
        + (f"{out_dir / checkpoint.LAST} holds epoch {epoch}, the last finite one; resume from it "
           "(steelkit train --resume, RESUME_FROM in a kernel) once the cause is fixed, or train afresh with a "
           "lower lr" if epoch else "no epoch was finite; train afresh with a lower lr or amp=false"))


def train_one_epoch(model, loader, loss_fn, optimizer, scaler, recipe, context, epoch: int, steps_per_epoch: int,
                    desc: str, show_every: int = 10, out_dir: Path = Path(".")) -> dict:
    """One pass over ``loader``, stepping every ``accumulation`` micro-batches -> mean loss, steps, last rate.
    The loss is read back from the device only every ``show_every`` steps (for the bar) and at the end. A
    non-finite loss (AMP's skipped step) is left out of the mean; ``DIVERGED_STREAK`` of them in a row, or an
    epoch without a finite one, raises ``Diverged``."""
    model.train()
    accumulation = accumulation_steps(recipe, context.world_size)
    device = context.device
    total, steps, lr = torch.zeros((), device=device), 0, recipe.lr
    finite_count, streak, worst = (torch.zeros((), dtype=torch.long, device=device) for _ in range(3))
    bad_loss = torch.zeros((), device=device)
    bar = tqdm(loader, desc=desc, leave=False, disable=not context.is_rank_zero)
    for i, batch in enumerate(bar):
        stepping = (i + 1) % accumulation == 0 or i + 1 == len(loader)
        # under DDP, gradients are all-reduced only on the micro-batch that steps
        sync = contextlib.nullcontext() if stepping or not context.distributed else model.no_sync()
        with sync:
            loss = backward_step(model, batch, loss_fn, scaler, recipe, device, accumulation)
        finite = torch.isfinite(loss)  # all on the device: nothing waits for the GPU here
        total += torch.where(finite, loss, 0.0)
        finite_count += finite.long()
        streak = (streak + 1) * (~finite).long()
        worst, bad_loss = torch.maximum(worst, streak), torch.where(finite, bad_loss, loss)
        if stepping:
            lr = learning_rate(recipe, epoch, steps, steps_per_epoch)
            optimizer_step(model, optimizer, scaler, lr, recipe.grad_clip)
            steps += 1
            if steps % show_every == 0:
                if int(worst) >= DIVERGED_STREAK:
                    raise diverged(recipe, epoch, steps, float(bad_loss), int(worst), "training", out_dir)
                if context.is_rank_zero:
                    bar.set_postfix(loss=f"{float(total) / max(int(finite_count), 1):.4f}")
    count = int(finite_count)
    if count == 0 or int(worst) >= min(DIVERGED_STREAK, len(loader)):
        raise diverged(recipe, epoch, steps, float(bad_loss), int(worst), "training", out_dir)
    return {"train_loss": float(total) / count, "steps": steps, "lr": lr}


def make_scaler(device: torch.device, recipe: Recipe) -> torch.amp.GradScaler:
    """Mixed precision's loss scaler: enabled on CUDA when the recipe asks for AMP, a pass-through elsewhere."""
    return torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and recipe.amp)


def resume_scaler(scaler, saved: dict) -> None:
    """The AMP scaler's state from ``last.pt``, on any device: a run saved on the CPU (its scaler disabled
    saves ``{}``) resumes on CUDA with AMP from a fresh scale; a CUDA run resumed on the CPU ignores it."""
    if saved:
        scaler.load_state_dict(saved)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(recipe: Recipe, epoch: int, rank: int = 0) -> int:
    """The seed of every random source of ``epoch`` on ``rank`` (rank 0: the single-process seed)."""
    return recipe.seed * 100_003 + epoch + 1_000_003 * rank


def training_rows(recipe: Recipe, data_dir: Path, out_dir: Path):
    """(train samples, validation samples, validation image ids, folds file) for the recipe's fold, with
    pseudo rows."""
    labels = data_dir / "train.csv"
    table = read_labels(labels, data_dir / "train_images")
    made, folds_file = folds.find(table, data_dir, out_dir, recipe.folds_file, recipe.n_folds, recipe.folds_seed)
    if 0 < recipe.train_images < len(table):  # the same subset in every kernel: the folds are the full table's
        keep = np.random.default_rng(recipe.folds_seed).choice(len(table), recipe.train_images, replace=False)
        table = table.iloc[np.sort(keep)].reset_index(drop=True)
    fold_of = made.set_index("ImageId")["fold"]
    in_valid = table["ImageId"].map(fold_of).to_numpy() == recipe.fold
    train = samples_from_table(table[~in_valid], data_dir / "train_images", source=labels)
    for path in filter(None, (p.strip() for p in recipe.pseudo_labels.split(","))):
        train += samples_from_table(read_pseudo_labels(path), data_dir / "test_images", pseudo=True, source=path)
    valid = samples_from_table(table[in_valid], data_dir / "train_images", source=labels)
    return train, valid, table["ImageId"][in_valid].tolist(), folds_file


def make_loader(dataset, recipe: Recipe, context, train: bool) -> DataLoader:
    """A loader made once per run, its workers kept across epochs: training shuffles through an
    ``EpochSampler`` (``loader.sampler.set_epoch`` before each epoch), validation goes in order. Workers
    from the cores present (``num_workers`` -1), pinned memory and deeper prefetching on CUDA. The
    generator keeps the loader off torch's global stream (model init, dropout)."""
    workers = loader_workers(recipe.num_workers, context.world_size)
    cuda = context.device.type == "cuda"
    sampler = EpochSampler(dataset, recipe.seed, context.rank, context.world_size) if train else None
    return DataLoader(dataset, batch_size=recipe.batch_size if train else recipe.val_batch_size, sampler=sampler,
                      num_workers=workers, worker_init_fn=worker_init_fn,
                      generator=torch.Generator().manual_seed(recipe.seed), pin_memory=cuda,
                      persistent_workers=workers > 0, prefetch_factor=(4 if cuda else 2) if workers else None,
                      drop_last=train and len(sampler) > recipe.batch_size)


def image_cache(recipe: Recipe, paths: list, shape, grayscale: bool, context, owner: str = ""):
    """The run's image cache (None: off), made and filled by rank 0 (the check of every image), opened by
    the others; rank 0 prints the choice, its size and fill time. Without a cache, rank 0 checks the images.
    ``owner``: the run's output folder (its cache is its own)."""
    channels = 1 if grayscale else 3
    paths = list(dict.fromkeys(paths))
    where = None
    if context.is_rank_zero:
        where, line = imagecache.choose(recipe.image_cache, len(paths) * shape[0] * shape[1] * channels,
                                        os.environ.get("STEELKIT_IMAGE_CACHE_DIR", ""))
        tqdm.write(line)
        if where is None:
            check_images(paths, shape, grayscale=grayscale)
        else:
            cache = imagecache.ImageCache.create(where, paths, shape, channels, owner)
            already = cache.filled()
            try:
                seconds = cache.fill()
            except ValueError:
                cache.remove()  # bad images: nothing to resume, and no RAM held for them
                raise
            tqdm.write(f"image cache: {len(paths)} images, {units.size(cache.bytes)} in {cache.path}, "
                       + (f"filled in {seconds:.1f}s" if already < len(paths) else "found filled")
                       + (f" ({already} found filled)" if 0 < already < len(paths) else ""))
            where = cache.path
    where = distributed.broadcast_object(context, where)  # the others wait for the filled file
    if where is None:
        return None
    return cache if context.is_rank_zero else imagecache.ImageCache.open(where, paths, shape, channels, owner)


@dataclasses.dataclass
class Run:
    """What one training run holds, made once by ``setup``: the recipe (naming its folds file), the process's
    place, data, model (``net`` is its DDP wrapper, or the model), optimiser, scaler and loss."""

    recipe: Recipe
    out_dir: Path
    context: distributed.Context
    shape: tuple[int, int]
    cache: imagecache.ImageCache | None
    items: int  # training and validation images, for the cache's line
    train_loader: DataLoader
    valid_loader: DataLoader
    valid_ids: list[str]
    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss_fn: torch.nn.Module
    steps_per_epoch: int
    drawn_at: float = -math.inf  # when the curves were last drawn (time.monotonic), and how many epochs they show
    drawn_epochs: int = 0


# the curves are drawn after an epoch at most this often (seconds), and at the end of every call: a drawing
# costs about half a second, an epoch on Kaggle minutes, and a test's epoch less than a drawing
CURVES_EVERY = 60.0


def train(recipe: Recipe, data_dir: str | os.PathLike, out_dir: str | os.PathLike, resume: bool = False,
          epochs_now: int | None = None, device: str | None = None, time_limit: float | str | None = None,
          started_at: float | None = None, clock=time.time) -> dict:
    """Train one model as ``recipe`` says; return the best validation scores and the output paths.

    ``epochs_now`` stops after that many epochs in this call; ``time_limit`` (seconds or "11h30m", counted
    from ``started_at`` on ``clock``, default now) stops before an epoch that would not fit
    (``steelkit.timelimit``), with ``result["stopped"]`` saying why. Either way a later call with
    ``resume=True`` goes on from ``last.pt``, with this or another number of processes.
    """
    deadline = None if time_limit is None else timelimit.Deadline(timelimit.parse_duration(time_limit),
                                                                  started_at, clock)
    run = setup(recipe, Path(data_dir), Path(out_dir), resume, device)
    start, best, history = resumed(run) if resume else (0, (-math.inf, -math.inf), [])
    if run.context.is_rank_zero:
        run.recipe.save(run.out_dir / "recipe.json")
    if deadline is not None:
        deadline.check_holds_an_epoch(history)

    ran, stopped = 0, ""
    for epoch in range(start, run.recipe.epochs):
        stopped = stop_before(run, epoch, ran, epochs_now, deadline, history)
        if stopped:
            break
        started, cached = clock(), run.cache.filled() if run.cache is not None else 0
        row, oof_arrays, validating = train_and_validate(run, epoch, started, clock)
        if run.context.is_rank_zero:
            history.append(row)
            best = save_epoch(run, epoch, row, oof_arrays, best, history, cached)
        distributed.barrier(run.context)
        ran += 1
        if deadline is not None:
            deadline.record(clock() - started, clock() - validating)
            if ran == 1:
                deadline.check_holds_an_epoch(history)
    finish(run, history, start + ran, stopped, final_pass=ran > 0)
    return {"best_score": best[0], "out": run.out_dir, "epochs_done": start + ran, "history": history,
            "stopped": stopped}


def setup(recipe: Recipe, data_dir: Path, out_dir: Path, resume: bool, device: str | None) -> Run:
    """The run's rows, checked images and labels, the shared image cache, loaders, model, optimiser, scaler
    and loss, on this process's device."""
    context = distributed.setup(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / checkpoint.LAST).exists() and not resume:
        raise FileExistsError(f"{out_dir} already holds a training run; resume it (--resume) or choose another --out")
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop and image shapes: pick the fastest kernels once

    train_samples, valid_samples, valid_ids, folds_file = training_rows(recipe, data_dir, out_dir)
    recipe = dataclasses.replace(recipe, folds_file=str(folds_file.resolve()))  # recipe.json says which folds
    used = [s.image_path for s in train_samples + valid_samples]
    shape = agreed_shape(used, "training images")
    grayscale = grayscale_is_exact(used)  # the cheaper exact decode, as prediction will use
    if context.is_rank_zero:
        check_labels(train_samples + valid_samples, shape)
    cache = image_cache(recipe, used, shape, grayscale, context, str(out_dir.resolve()))
    train_set = SteelDataset(train_samples, shape, train_augment(recipe, shape), grayscale, cache, recipe.seed)
    valid_set = SteelDataset(valid_samples, shape, None, grayscale, cache)
    valid_shard = validation.shard(valid_set, recipe.val_batch_size, context.rank, context.world_size)
    train_loader = make_loader(train_set, recipe, context, train=True)
    valid_loader = make_loader(valid_shard, recipe, context, train=False)

    seed_everything(recipe.seed)
    model = build_model(recipe)
    freeze_unused(model)  # DDP stops on parameters that never get a gradient
    model = model.to(context.device)
    if context.device.type == "cuda" and recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = DistributedDataParallel(model, device_ids=[context.device] if context.device.type == "cuda" else None) \
        if context.distributed else model
    return Run(recipe=recipe, out_dir=out_dir, context=context, shape=shape, cache=cache,
               items=len(train_set) + len(valid_set), train_loader=train_loader, valid_loader=valid_loader,
               valid_ids=valid_ids, model=model, net=net, optimizer=build_optimizer(model, recipe),
               scaler=make_scaler(context.device, recipe), loss_fn=build_loss(recipe).to(context.device),
               steps_per_epoch=steps_in(len(train_loader), accumulation_steps(recipe, context.world_size)))


def resumed(run: Run) -> tuple[int, tuple[float, float], list[dict]]:
    """The state ``last.pt`` holds loaded into the run -> (the next epoch, the best (score, -loss), the
    history); a fresh start when there is no ``last.pt``."""
    path = run.out_dir / checkpoint.LAST
    if not path.exists():
        return 0, (-math.inf, -math.inf), []
    state = checkpoint.load_state(path)
    check_resumable(Recipe.from_dict(state["recipe"]), run.recipe, path)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    resume_scaler(run.scaler, state["scaler"])
    if run.context.is_rank_zero:
        # a kill after last.pt and before the metrics leaves them an epoch behind, and its temp files behind
        atomic.remove_stale(run.out_dir)
        atomic.write_csv(pd.DataFrame(state["history"]), run.out_dir / "metrics.csv")
        if state.get("world_size", 1) != run.context.world_size:
            tqdm.write(f"resuming a run of {state.get('world_size', 1)} process(es) with {run.context.world_size}: "
                       f"the effective batch stays {run.recipe.effective_batch}, the schedule keeps its shape")
    return state["epoch"] + 1, tuple(state["best"]), state["history"]


def stop_before(run: Run, epoch: int, ran: int, epochs_now: int | None, deadline, history: list[dict]) -> str:
    """Why this call stops before ``epoch`` (its share of epochs done, or the time limit), "" to go on."""
    recipe, named = run.recipe, f"{run.recipe.name} fold {run.recipe.fold}"
    if epochs_now is not None and ran >= epochs_now:
        return (f"{named}: stopped after epoch {epoch} of {recipe.epochs} "
                f"(epochs_now {epochs_now}: this session's share); resume to go on")
    if deadline is None:
        return ""
    # rank 0 decides for all: the ranks' clocks may differ a little
    problem = distributed.broadcast_object(run.context, deadline.next_epoch_problem(
        history, epoch + 1 == recipe.epochs, recipe.stage == "segmenter"))
    if not problem:
        return ""
    stopped = (f"{named}: stopped before epoch {epoch + 1} of {recipe.epochs} "
               f"({problem}); {run.out_dir / checkpoint.LAST} holds epoch {epoch}: resume to go on")
    if run.context.is_rank_zero:
        tqdm.write(stopped)
    return stopped


def train_and_validate(run: Run, epoch: int, started: float, clock) -> tuple[dict | None, dict | None, float]:
    """One epoch's training and validation -> (its metrics row and out-of-fold arrays on rank 0, else None,
    when validation began). A validation loss that is not finite stops the run (``Diverged``)."""
    recipe, context = run.recipe, run.context
    seed_everything(epoch_seed(recipe, epoch, context.rank))
    run.train_loader.sampler.set_epoch(epoch)
    desc = f"{recipe.name} fold {recipe.fold} epoch {epoch + 1}/{recipe.epochs}"
    done = train_one_epoch(run.net, run.train_loader, run.loss_fn, run.optimizer, run.scaler, recipe, context, epoch,
                           run.steps_per_epoch, desc, out_dir=run.out_dir)
    distributed.broadcast_buffers(run.model, context)
    validating = clock()
    parts = validation.validation_parts(run.model, run.valid_loader, run.loss_fn, recipe, context.device,
                                        show=context.is_rank_zero)
    gathered = distributed.gather(context, parts)
    if not context.is_rank_zero:
        return None, None, validating
    result = validation.scores_and_oof(validation.merge(gathered), recipe.stage)
    row = {"epoch": epoch + 1, "lr": done["lr"], "steps": done["steps"], "train_loss": done["train_loss"],
           **{k: float(v) for k, v in result["scores"].items()}, "seconds": clock() - started,
           "val_seconds": clock() - validating}
    if not math.isfinite(row["val_loss"]):  # a model whose outputs are not finite is no model at all
        raise diverged(recipe, epoch, done["steps"], row["val_loss"], 0, "validation", run.out_dir)
    return row, result["oof"], validating


def save_epoch(run: Run, epoch: int, row: dict, oof_arrays: dict, best: tuple[float, float], history: list[dict],
               cached: int) -> tuple[float, float]:
    """Rank 0 saves the epoch: ``best.pt`` and ``oof.npz`` when it is the best, ``last.pt``, ``metrics.csv``,
    the curves (``CURVES_EVERY``), then its line -> the best (score, -loss) so far. The state first, the metrics
    then, the picture last: a kill between them loses no epoch that metrics.csv claims (a resumed run rewrites
    it from last.pt's history)."""
    recipe, out_dir, model = run.recipe, run.out_dir, run.model
    if (row["score"], -row["val_loss"]) > best:  # ties (common early on) go to the lower loss
        best = (row["score"], -row["val_loss"])
        checkpoint.save(out_dir / checkpoint.BEST, {
            "model": model.state_dict(), "recipe": dataclasses.asdict(recipe), "epoch": epoch,
            "score": row["score"], "scores": row})
        oof.write(out_dir / oof.FILE, run.valid_ids, recipe.stage, recipe.oof_scale, run.shape, oof_arrays)
    checkpoint.save(out_dir / checkpoint.LAST, {
        "model": model.state_dict(), "recipe": dataclasses.asdict(recipe), "epoch": epoch, "best": best,
        "optimizer": run.optimizer.state_dict(), "scaler": run.scaler.state_dict(), "history": history,
        "world_size": run.context.world_size})
    atomic.write_csv(pd.DataFrame(history), out_dir / "metrics.csv")
    if time.monotonic() - run.drawn_at >= CURVES_EVERY:
        curves(run, history)
    tqdm.write(f"{recipe.name} fold {recipe.fold} epoch {epoch + 1}/{recipe.epochs}: train loss "
               f"{row['train_loss']:.4f}, val loss {row['val_loss']:.4f}, score {row['score']:.4f} "
               f"(best {best[0]:.4f}), {row['seconds']:.0f}s"
               + (cache_line(run.cache, cached, run.items) if run.cache is not None else ""))
    return best


def curves(run: Run, history: list[dict]) -> None:
    draw_curves(pd.DataFrame(history), run.out_dir / "curves.png", f"{run.recipe.name} fold {run.recipe.fold}")
    run.drawn_at, run.drawn_epochs = time.monotonic(), len(history)


def finish(run: Run, history: list[dict], epochs_done: int, stopped: str, final_pass: bool) -> None:
    """The curves of every epoch, a complete segmenter's final out-of-fold pass (the full-resolution tables,
    from ``best.pt``; again only when this call trained or they are missing), ``run.json``, the cache's
    removal once the run is complete (a stopped one keeps it for its resumption on this machine), and the
    processes' end. Every rank knows ``epochs_done``; only rank 0 holds the history of this call's epochs."""
    recipe, out_dir, context = run.recipe, run.out_dir, run.context
    complete = epochs_done >= recipe.epochs
    if context.is_rank_zero and len(history) > run.drawn_epochs:
        curves(run, history)
    if recipe.stage == "segmenter" and complete and (out_dir / checkpoint.BEST).exists() \
            and (final_pass or not oof.has_tables(out_dir / oof.FILE)):
        final_oof(run.model, run.valid_ids, run.valid_loader, run.loss_fn, recipe, context, out_dir, run.shape)
    if context.is_rank_zero:
        checkpoint.save_run(out_dir, epochs_done, recipe.epochs, stopped)
    distributed.barrier(context)
    if run.cache is not None and context.is_rank_zero and complete:
        run.cache.remove()
    distributed.teardown(context)


def final_oof(model, valid_ids: list[str], loader, loss_fn, recipe: Recipe, context, out_dir: Path,
              shape) -> None:
    """The best checkpoint's validation once more, with the threshold search's full-resolution tables
    (they cost a labelling per class and pixel threshold, too much for every epoch): oof.npz rewritten."""
    started = time.time()
    model.load_state_dict(checkpoint.load_state(out_dir / checkpoint.BEST)["model"])
    parts = validation.validation_parts(model, loader, loss_fn, recipe, context.device, show=context.is_rank_zero,
                                        tables=True)
    gathered = distributed.gather(context, parts)
    if context.is_rank_zero:
        result = validation.scores_and_oof(validation.merge(gathered), recipe.stage)
        oof.write(out_dir / oof.FILE, valid_ids, recipe.stage, recipe.oof_scale, shape, result["oof"])
        tqdm.write(f"{recipe.name} fold {recipe.fold}: out-of-fold maps and full-resolution threshold tables of "
                   f"the best epoch for {len(valid_ids)} images, {time.time() - started:.0f}s")
    distributed.barrier(context)


def cache_line(cache, before: int, items: int) -> str:
    """The epoch's image-cache hits, from the images it had to decode (filled during the epoch)."""
    decoded = cache.filled() - before
    return f", image cache hit rate {1 - decoded / max(items, 1):.0%}" + (f" ({decoded} decoded)" if decoded else "")


def draw_curves(history: pd.DataFrame, path: Path, title: str) -> None:
    """curves.png beside metrics.csv, redrawn every epoch; a picture never stops a training run."""
    from steelkit import figures

    try:
        figures.training_curves(history, path, title)
    except Exception as error:  # matplotlib's failures are many; the run and its checkpoints matter more
        tqdm.write(f"warning: no training curves ({type(error).__name__}: {error})")
