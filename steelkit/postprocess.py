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


def clean_mask(probs: np.ndarray, pixel_threshold: float, min_component_px: int, min_total_px: int) -> np.ndarray:
    """Steps 2-4 for one class: (H, W) float32 probabilities -> (H, W) uint8 mask."""
    mask = (probs > pixel_threshold).view(np.uint8)
    if min_component_px > 1 and mask.any():
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        keep = (stats[:, cv2.CC_STAT_AREA] >= min_component_px).astype(np.uint8)
        keep[0] = 0  # the background
        if not keep[1:].all():
            if count <= 256:  # labels fit a byte: cv2's table lookup, several times faster than numpy's
                mask = cv2.LUT(labels.astype(np.uint8), np.pad(keep, (0, 256 - count)))
            else:
                mask = keep.take(labels)
    if int(np.count_nonzero(mask)) < min_total_px:
        mask = np.zeros_like(mask)
    return mask


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
