"""Post-processing, per class, in the seed's order:

1. keep the class only if the classifier ensemble's probability passes its label threshold;
2. keep pixels whose probability is above the pixel threshold;
3. remove 8-connected components of fewer than ``min_component_px`` pixels;
4. drop the whole mask if fewer than ``min_total_px`` pixels remain.

Areas are in pixels of a 256 x 1600 image; ``config.for_shape((H, W))`` rescales them for other sizes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

REFERENCE_SHAPE = (256, 1600)


@dataclass(frozen=True)
class PostprocessConfig:
    """Per-class thresholds (classes 1-4); the defaults are the seed's numbers."""

    label_thresholds: tuple[float, ...] = (0.7, 0.7, 0.6, 0.6)
    pixel_thresholds: tuple[float, ...] = (0.55, 0.55, 0.55, 0.55)
    min_component_px: tuple[int, ...] = (150, 150, 150, 150)
    min_total_px: tuple[int, ...] = (600, 600, 900, 2000)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            values = getattr(self, field.name)
            if len(values) != 4:
                raise ValueError(f"{field.name} {values}: expected four values, one per class")
        for name in ("label_thresholds", "pixel_thresholds"):
            if not all(0 <= v <= 1 for v in getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)}: probabilities in [0, 1]")

    def for_shape(self, shape: tuple[int, int]) -> PostprocessConfig:
        """The same config with areas scaled from 256 x 1600 to an image of ``shape``."""
        ratio = shape[0] * shape[1] / (REFERENCE_SHAPE[0] * REFERENCE_SHAPE[1])
        if ratio == 1:
            return self
        return dataclasses.replace(self, min_component_px=tuple(int(round(v * ratio)) for v in self.min_component_px),
                                   min_total_px=tuple(int(round(v * ratio)) for v in self.min_total_px))


# Below this share of foreground pixels, component areas are counted at the foreground pixels alone (a
# plain labelling plus a few thousand lookups); above it, cv2's labelling with statistics is cheaper.
SPARSE_SHARE = 0.05


def clean_mask(probs: np.ndarray, pixel_threshold: float, min_component_px: int, min_total_px: int) -> np.ndarray:
    """Steps 2-4 for one class: (H, W) float32 probabilities -> (H, W) uint8 mask."""
    mask = (probs > pixel_threshold).view(np.uint8)
    area = cv2.countNonZero(mask)
    if area == 0 or area < min_total_px:  # removing components can only lower the area
        return np.zeros_like(mask)
    if min_component_px > 1:
        if area <= SPARSE_SHARE * mask.size:
            area -= drop_small_sparse(mask, min_component_px)
        else:
            mask, area = drop_small_dense(mask, min_component_px)
    return mask if area >= min_total_px else np.zeros_like(mask)


def drop_small_sparse(mask: np.ndarray, min_component_px: int) -> int:
    """Zero the 8-connected components of ``mask`` under ``min_component_px`` pixels, in place -> the
    pixels removed. Areas are counted at the foreground pixels only: cheap where they are few."""
    count, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
    points = cv2.findNonZero(mask).reshape(-1, 2)  # (x, y) of every foreground pixel
    rows, cols = points[:, 1], points[:, 0]
    at = labels[rows, cols]
    areas = np.bincount(at, minlength=count)
    small = areas < min_component_px
    small[0] = False  # the background
    if not small.any():
        return 0
    gone = small[at]
    mask[rows[gone], cols[gone]] = 0
    return int(areas[small].sum())


def drop_small_dense(mask: np.ndarray, min_component_px: int) -> tuple[np.ndarray, int]:
    """The components of ``mask`` under ``min_component_px`` pixels removed -> (mask, its area), using
    cv2's labelling with statistics (cheaper than lookups once the foreground is large)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = (areas >= min_component_px).astype(np.uint8)
    keep[0] = 0  # the background
    area = int(areas[1:][keep[1:] == 1].sum())
    if keep[1:].all():
        return mask, area
    if count <= 256:  # labels fit a byte: cv2's table lookup, several times faster than numpy's
        return cv2.LUT(labels.astype(np.uint8), np.pad(keep, (0, 256 - count))), area
    return keep.take(labels), area


def postprocess(seg_probs: np.ndarray, cls_probs: np.ndarray, config: PostprocessConfig) -> np.ndarray:
    """(4, H, W) float32 segmenter probabilities + (4, ) float32 classifier probabilities -> (4, H, W) uint8
    masks; a class the classifier turns off is not post-processed at all. Areas in ``config`` are taken as
    pixels of this image (see ``for_shape``)."""
    cls_probs = np.asarray(cls_probs)  # thresholds in the probabilities' precision: 0.7 passes 0.7 in float32
    return clean_classes(seg_probs, config, cls_probs >= np.asarray(config.label_thresholds, dtype=cls_probs.dtype))


def clean_classes(seg_probs: np.ndarray, config: PostprocessConfig, classes: np.ndarray) -> np.ndarray:
    """Steps 2-4 for the ``classes`` (a (4,) bool) of one image, the others left empty: (4, H, W) float32
    probabilities -> (4, H, W) uint8 masks. Areas in ``config`` are pixels of this image."""
    masks = np.zeros(seg_probs.shape, dtype=np.uint8)
    for k in np.flatnonzero(classes):
        masks[k] = clean_mask(seg_probs[k], config.pixel_thresholds[k], config.min_component_px[k],
                              config.min_total_px[k])
    return masks
