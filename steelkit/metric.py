"""The competition's metric: mean Dice over every (image, class) pair.

A pair scores 2|X and Y| / (|X| + |Y|), and 1 when both prediction and truth are empty. The mean is
over all pairs of all images, not per image over flattened channels (the starter kernels' "dice").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from steelkit import rle as rle_lib
from steelkit.competition import CLASSES, RLE_COLUMNS


def pair_dice(intersection, truth_area, pred_area) -> np.ndarray:
    """Dice per pair from pixel counts (any matching shapes); 1 where both areas are 0."""
    intersection = np.asarray(intersection, dtype=np.float64)
    total = np.asarray(truth_area, dtype=np.float64) + np.asarray(pred_area, dtype=np.float64)
    return np.where(total > 0, 2 * intersection / np.maximum(total, 1), 1.0)


def dice_masks(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-pair Dice of (N, 4, H, W) binary masks -> (N, 4) float64."""
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
    truth, pred = truth.astype(bool), pred.astype(bool)
    axes = tuple(range(2, truth.ndim))
    return pair_dice((truth & pred).sum(axes), truth.sum(axes), pred.sum(axes))


def dice_tables(truth: pd.DataFrame, pred: pd.DataFrame, shape=rle_lib.IMAGE_SHAPE) -> pd.DataFrame:
    """Per-pair Dice of two canonical tables -> DataFrame (ImageId, 1, 2, 3, 4).

    Pairs are taken over the union of the images of both tables; an image one table lacks counts as
    empty there (the long schema leaves defect-free images out).
    """
    images = pd.unique(np.concatenate([truth["ImageId"].to_numpy(), pred["ImageId"].to_numpy()]))
    truth = truth.set_index("ImageId").reindex(images, fill_value="")
    pred = pred.set_index("ImageId").reindex(images, fill_value="")
    scores = {"ImageId": images}
    for class_id, col in zip(CLASSES, RLE_COLUMNS):
        scores[class_id] = [_rle_dice(t, p, shape) for t, p in zip(truth[col], pred[col])]
    return pd.DataFrame(scores)


def _rle_dice(truth_rle: str, pred_rle: str, shape) -> float:
    if not truth_rle and not pred_rle:
        return 1.0
    truth, pred = rle_lib.decode(truth_rle, shape), rle_lib.decode(pred_rle, shape)
    return float(pair_dice(np.count_nonzero(truth & pred), truth.sum(dtype=np.int64), pred.sum(dtype=np.int64)))


def score_tables(truth: pd.DataFrame, pred: pd.DataFrame, shape=rle_lib.IMAGE_SHAPE
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """The mean Dice of a prediction table against the truth, and of the all-empty prediction beside it
    (the score of predicting nothing) -> (summary, all-empty summary), over the images of either table."""
    empty = pred.assign(**{col: "" for col in RLE_COLUMNS})
    return tuple(summarize(dice_tables(truth, table, shape)[list(CLASSES)].to_numpy()) for table in (pred, empty))


def summarize(pair_scores: np.ndarray) -> dict[str, float]:
    """Mean Dice and per-class means of an (N, 4) array of pair scores."""
    pair_scores = np.asarray(pair_scores, dtype=np.float64)
    summary = {"mean": float(pair_scores.mean()) if pair_scores.size else float("nan")}
    for i, class_id in enumerate(CLASSES):
        summary[f"class_{class_id}"] = float(pair_scores[:, i].mean()) if len(pair_scores) else float("nan")
    return summary


def format_report(summary: dict[str, float], baseline: dict[str, float] | None = None) -> str:
    """First line ``mean Dice: 0.87120``, then a per-class table (with the baseline beside it if given)."""
    lines = [f"mean Dice: {summary['mean']:.5f}"]
    header = f"{'class':>8} {'dice':>8}" + (f" {'all-empty':>10}" if baseline else "")
    lines.append(header)
    for key in ["mean", *(f"class_{c}" for c in CLASSES)]:
        label = key.replace("class_", "")
        line = f"{label:>8} {summary[key]:8.5f}"
        if baseline:
            line += f" {baseline[key]:10.5f}"
        lines.append(line)
    return "\n".join(lines)
