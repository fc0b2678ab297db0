"""Augmentations: the seed's defect blackout, random crop, flips and brightness/contrast, on uint8 pixels.

Every training item draws its augmentation from its own stream, ``numpy.random.default_rng((seed, epoch,
index))``, before any pixel is touched: the same item of the same epoch gets the same crop whichever worker
or process loads it, and a resumed run draws what an uninterrupted one would. Then the crop is cut first and
everything works on it alone: the mask is decoded inside the crop's columns only, flips are folded into the
one copy of the crop, brightness/contrast is albucore's lookup table on it, in place. The blackout still
chooses its region among the whole image's defects (as the seed's, which ran before the crop), then blacks
out the part of it inside the crop.

Pixels stay uint8, one channel where the images are grayscale, and the four classes' masks travel packed in
one byte a pixel, until the device (``model_input``).
"""

from __future__ import annotations

from dataclasses import dataclass

import albucore
import cv2
import numpy as np

from steelkit import masks
from steelkit import rle as rle_lib


@dataclass(frozen=True)
class Augment:
    """The training augmentation of a recipe: probabilities, and the crop's (height, width)."""

    crop: tuple[int, int]
    blackout: float = 0.0
    hflip: float = 0.5
    vflip: float = 0.5
    brightness_contrast: float = 0.5
    limit: float = 0.2  # RandomBrightnessContrast's limits (brightness by the max value): the recipe's


@dataclass(frozen=True)
class Draw:
    """One item's draws: the crop's corner, the flips, the blackout (``pick`` chooses its region among
    the image's defects) and the brightness/contrast as ``out = alpha * pixel + beta``."""

    top: int = 0
    left: int = 0
    hflip: bool = False
    vflip: bool = False
    blackout: bool = False
    pick: float = 0.0
    alpha: float = 1.0
    beta: float = 0.0


def train_augment(recipe, image_shape: tuple[int, int]) -> Augment:
    """The recipe's augmentation for images of ``image_shape`` (a crop larger than the image is the image)."""
    height, width = image_shape
    crop = (min(recipe.crop_height or height, height), min(recipe.crop_width or width, width))
    return Augment(crop, recipe.blackout, recipe.hflip, recipe.vflip, recipe.brightness_contrast,
                   recipe.brightness_contrast_limit)


def draw(augment: Augment, image_shape: tuple[int, int], rng: np.random.Generator) -> Draw:
    """The draws of one item, always the same nine numbers in the same order (eight at once, then the
    blackout's pick): the stream's layout does not depend on what fired."""
    u = rng.random(8)
    height, width = image_shape
    top = int(u[0] * (height - augment.crop[0] + 1))
    left = int(u[1] * (width - augment.crop[1] + 1))
    adjust = bool(u[5] < augment.brightness_contrast)
    alpha = 1.0 + (2 * u[6] - 1) * augment.limit if adjust else 1.0
    beta = (2 * u[7] - 1) * augment.limit * 255 if adjust else 0.0
    return Draw(top, left, bool(u[2] < augment.hflip), bool(u[3] < augment.vflip), bool(u[4] < augment.blackout),
                float(rng.random()), alpha, beta)


def blackout_region(rles, shape: tuple[int, int], pick: float) -> tuple[np.ndarray, int, int] | None:
    """The defect region ``pick`` in [0, 1) chooses among every 8-connected component of every class of the
    whole image -> (labels, label, first column): ``labels == label`` is the region within the columns
    from the first that its class's runs touch; None without defects. Each class is labelled only over
    those columns."""
    found = []
    for text in rles:
        touched = rle_lib.columns(text, shape)
        if touched is not None:
            first, last = touched
            layer = rle_lib.decode_window(text, shape, 0, first, shape[0], last - first)
            count, labels = cv2.connectedComponents(layer, connectivity=8)
            found += [(labels, k, first) for k in range(1, count)]
    return found[int(pick * len(found))] if found else None


def _flip_code(draw: Draw) -> int | None:
    """``cv2.flip``'s code for the draw's flips (None: no flip)."""
    if draw.hflip and draw.vflip:
        return -1
    return 1 if draw.hflip else 0 if draw.vflip else None


def crop_item(image: np.ndarray, rles, shape: tuple[int, int], crop: tuple[int, int],
              draw: Draw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, C) uint8 image and its four RLE strings -> the augmented crop: (h, w, C) uint8 image, its
    (h, w) uint8 mask with bit k - 1 for class k (``masks.pack``), and the (4,) uint8 labels it holds; the
    image is made in one copy."""
    height, width = crop
    rows = slice(draw.top, draw.top + height)
    flip = (slice(None, None, -1 if draw.vflip else 1), slice(None, None, -1 if draw.hflip else 1))
    window, code = image[rows, draw.left:draw.left + width], _flip_code(draw)
    # cv2 copies a flipped window 5x faster than numpy copies a reversed view (it drops a last axis of 1)
    out = np.ascontiguousarray(window) if code is None else cv2.flip(window, code).reshape(window.shape)
    mask = masks.pack(rles, shape, draw.top, draw.left, height, width, code)[0]
    if draw.blackout:
        chosen = blackout_region(rles, shape, draw.pick)
        if chosen is not None:
            labels, label, first = chosen
            low, high = max(draw.left, first), min(draw.left + width, first + labels.shape[1])
            if high > low:
                region = np.zeros((height, width), dtype=bool)
                region[:, low - draw.left:high - draw.left] = labels[rows, low - first:high - first] == label
                region = region[flip]
                out[region] = 0
                mask[region] = 0
    if draw.alpha != 1.0 or draw.beta != 0.0:  # after the blackout, as the seed's order had it
        out = albucore.multiply_add(out, draw.alpha, draw.beta, inplace=True)
    return out, mask, masks.labels(mask)
