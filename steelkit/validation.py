"""Validation of one epoch: the scores training keeps its best checkpoint by, and out-of-fold probabilities.

- segmenter: Kaggle mean Dice of the masks after the seed's default post-processing (without the
  classifier's gating), per class; out-of-fold maps as uint8 ``round(255 p)`` averaged over
  ``oof_scale`` x ``oof_scale`` blocks, and, when asked (``tables``: the final pass of a training run),
  each image's kept areas and overlaps at full resolution for the threshold search
  (``postprocess.full_resolution_stats``) with its truth areas;
- classifier: per-class accuracy and F1 at probability 0.5, and the gated-oracle Dice; out-of-fold
  probabilities (N, 4) float32.

Under DDP every rank validates its own share of whole validation batches (``shard``), the parts are
gathered on rank 0 in rank order and summarised there: each image goes through the model in the same
batch as in a single-process run, so the scores are those of one process validating everything.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from steelkit import metric, oof
from steelkit.masks import unpack
from steelkit.model_input import model_input
from steelkit.models import pad_to_multiple
from steelkit.postprocess import (
    TABLE_PIXEL_GRID,
    TABLE_SIZE_GRID,
    PostprocessConfig,
    clean_classes,
    full_resolution_stats,
)


def shard(dataset: Dataset, batch_size: int, rank: int, world_size: int) -> Dataset:
    """Rank ``rank``'s contiguous share of whole batches of ``dataset`` (all of it in one process)."""
    if world_size == 1:
        return dataset
    per_rank = math.ceil(math.ceil(len(dataset) / batch_size) / world_size) * batch_size
    return Subset(dataset, range(min(len(dataset), rank * per_rank), min(len(dataset), (rank + 1) * per_rank)))


@torch.no_grad()
def validation_parts(model, loader, loss_fn, recipe, device: torch.device, show: bool = True,
                     tables: bool = False) -> dict:
    """Per-batch raw results over ``loader`` as numpy arrays (picklable, to gather across ranks);
    ``tables``: with the segmenter's full-resolution threshold-search tables."""
    model.eval()
    parts = {"loss_sum": [], "count": [], "dice": [], "seg_probs": [], "cls_probs": [], "labels": [],
             "seg_tables": [], "truth_px": []}
    for batch in tqdm(loader, desc="validate", leave=False, disable=not show):
        images = model_input(batch["image"], device)
        target = (batch["labels"].to(device) if recipe.stage == "classifier"
                  else unpack(batch["mask"], device)).float()
        padded, (height, width) = pad_to_multiple(images)
        if device.type == "cuda" and recipe.channels_last:
            padded = padded.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=device.type == "cuda" and recipe.amp):
            logits = model(padded)
        logits = logits.float()
        if recipe.stage == "segmenter":
            logits = logits[..., :height, :width]
            probs = logits.sigmoid()
            full, truth = probs.cpu().numpy(), target.cpu().numpy()
            parts["dice"].append(metric.dice_masks(truth, clean_masks(full)))
            if tables:
                parts["seg_tables"].append(full_resolution_stats(full, truth > 0.5))
                parts["truth_px"].append((truth > 0.5).sum(axis=(2, 3)).astype(np.int32))
            small = torch.nn.functional.avg_pool2d(probs, recipe.oof_scale) if recipe.oof_scale > 1 else probs
            parts["seg_probs"].append((small * 255).round().to(torch.uint8).cpu().numpy())
        else:
            parts["cls_probs"].append(logits.sigmoid().cpu().numpy().astype(np.float32))
            parts["labels"].append(target.cpu().numpy() > 0.5)
        parts["loss_sum"].append(float(loss_fn(logits, target)) * len(images))
        parts["count"].append(len(images))
    return parts


def merge(parts_per_rank: list[dict]) -> dict:
    """The parts of several ranks, in rank order, as if one process had made them."""
    return {key: [item for parts in parts_per_rank for item in parts[key]] for key in parts_per_rank[0]}


def scores_and_oof(parts: dict, stage: str) -> dict:
    """{"scores": val_loss, score and the per-class scores; "oof": the out-of-fold arrays} from the parts."""
    scores = {"val_loss": sum(parts["loss_sum"]) / max(sum(parts["count"]), 1)}
    if stage == "segmenter":
        summary = metric.summarize(np.concatenate(parts["dice"]))
        scores.update({"score": summary["mean"], **{f"dice_{k}": v for k, v in summary.items() if k != "mean"}})
        arrays = {oof.SEG_PROBS: np.concatenate(parts["seg_probs"])}
        if parts.get("seg_tables"):
            arrays.update({oof.SEG_TABLES: np.concatenate(parts["seg_tables"]),
                           oof.TRUTH_PX: np.concatenate(parts["truth_px"]),
                           oof.TABLE_PIXEL: np.array(TABLE_PIXEL_GRID),
                           oof.TABLE_SIZES: np.array(TABLE_SIZE_GRID)})
        return {"scores": scores, "oof": arrays}
    probs, truth = np.concatenate(parts["cls_probs"]), np.concatenate(parts["labels"])
    scores.update(classifier_scores(probs, truth))
    return {"scores": scores, "oof": {oof.CLS_PROBS: probs.astype(np.float32)}}


def clean_masks(probs: np.ndarray) -> np.ndarray:
    """(N, 4, H, W) probabilities -> masks after the seed's default post-processing without the classifier's
    gating: the segmenter's validation Dice is scored on what a submission would keep, so that speckles on
    empty images count against it as they would on the leaderboard."""
    config, every = PostprocessConfig().for_shape(probs.shape[-2:]), np.ones(4, dtype=bool)
    return np.stack([clean_classes(p, config, every) for p in probs])


def classifier_scores(probs: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> dict:
    """Per-class accuracy and F1 of (N, 4) probabilities, and the gated-oracle Dice.

    Gated-oracle Dice: the Kaggle mean Dice if every mask came from a perfect segmenter that cannot tell
    absence, with this classifier deciding presence: a pair scores 1 when the call is right and 0 when it
    is not (a missed defect scores 0; a false alarm gets a non-empty mask on an empty pair, also 0).
    """
    pred = probs > threshold
    scores = {"score": float((pred == truth).mean())}
    for k in range(truth.shape[1]):
        tp = float((pred[:, k] & truth[:, k]).sum())
        fp, fn = float((pred[:, k] & ~truth[:, k]).sum()), float((~pred[:, k] & truth[:, k]).sum())
        scores[f"acc_{k + 1}"] = float((pred[:, k] == truth[:, k]).mean())
        scores[f"f1_{k + 1}"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return scores
