"""Augmentations: the seed's defect blackout, random crop, flips and brightness/contrast, on uint8 pixels.

Every training item draws its augmentation from its own stream, ``numpy.random.default_rng((seed, epoch,
index))``, before any pixel is touched: the same item of the same epoch gets the same crop whichever worker
or process loads it, and a resumed run draws what an uninterrupted one would. Then the crop is cut first and
everything works on it alone: the mask is decoded inside the crop's columns only, flips are folded into the
one copy of the crop, brightness/contrast is albucore's lookup table on it, in place. The blackout still
chooses its region among the whole image's defects (as the seed's, which ran before the crop), then blacks
out the part of it inside the crop.

Pixels stay uint8, one channel where the images are grayscale, until the device (``model_input``).
"""

from __future__ import annotations

from dataclasses import dataclass

import albucore
import cv2
import numpy as np

from steelkit import rle as rle_lib

LIMIT = 0.2  # albumentations' RandomBrightnessContrast limits (brightness by the max value), as the seed used


@dataclass(frozen=True)
class Augment:
    """The training augmentation of a recipe: probabilities, and the crop's (height, width)."""

    crop: tuple[int, int]
    blackout: float = 0.0
    hflip: float = 0.5
    vflip: float = 0.5
    brightness_contrast: float = 0.5


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
    return Augment(crop, recipe.blackout, recipe.hflip, recipe.vflip, recipe.brightness_contrast)


def draw(augment: Augment, image_shape: tuple[int, int], rng: np.random.Generator) -> Draw:
    """The draws of one item, always the same eight numbers in the same order (the stream's layout does not
    depend on what fired)."""
    u = rng.random(8)
    height, width = image_shape
    top = int(u[0] * (height - augment.crop[0] + 1))
    left = int(u[1] * (width - augment.crop[1] + 1))
    adjust = bool(u[5] < augment.brightness_contrast)
    alpha = 1.0 + (2 * u[6] - 1) * LIMIT if adjust else 1.0
    beta = (2 * u[7] - 1) * LIMIT * 255 if adjust else 0.0
    return Draw(top, left, bool(u[2] < augment.hflip), bool(u[3] < augment.vflip), bool(u[4] < augment.blackout),
                float(rng.random()), alpha, beta)


def blackout_region(rles, shape: tuple[int, int], pick: float) -> tuple[np.ndarray, int] | None:
    """The defect region ``pick`` in [0, 1) chooses among every 8-connected component of every class of the
    whole image -> (labels, label): ``labels == label`` is the region, labels a (H, W) view; None without
    defects. Components are labelled on the column-major layout the RLE decodes to (8-connectivity does
    not care about the transposition), so no full-image copy is made."""
    found = []
    for text in rles:
        layer = rle_lib.decode_window(text, shape, 0, 0, *shape)
        if layer is not None:
            count, labels = cv2.connectedComponents(layer.T, connectivity=8)  # layer.T is C-contiguous
            found += [(labels.T, k) for k in range(1, count)]
    return found[int(pick * len(found))] if found else None


def crop_item(image: np.ndarray, rles, shape: tuple[int, int], crop: tuple[int, int],
              draw: Draw) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, C) uint8 image and its four RLE strings -> the augmented crop: (h, w, C) uint8 image and
    (4, h, w) uint8 mask, both C-contiguous, each made in one copy."""
    height, width = crop
    rows = slice(draw.top, draw.top + height)
    cols = slice(draw.left, draw.left + width)
    flip = (slice(None, None, -1 if draw.vflip else 1), slice(None, None, -1 if draw.hflip else 1))
    out = np.ascontiguousarray(image[rows, cols][flip])
    mask = np.zeros((4, height, width), dtype=np.uint8)
    for k, text in enumerate(rles):
        window = rle_lib.decode_window(text, shape, draw.top, draw.left, height, width)
        if window is not None:
            mask[k] = window[flip]
    if draw.blackout:
        chosen = blackout_region(rles, shape, draw.pick)
        if chosen is not None:
            labels, label = chosen
            region = labels[rows, cols][flip] == label
            out[region] = 0
            mask[:, region] = 0
    if draw.alpha != 1.0 or draw.beta != 0.0:  # after the blackout, as the seed's order had it
        out = albucore.multiply_add(out, draw.alpha, draw.beta, inplace=True)
    return out, mask


def full_mask(rles, shape: tuple[int, int]) -> np.ndarray:
    """The four RLE strings as a C-contiguous (4, H, W) uint8 mask; empty classes cost no decode."""
    mask = np.zeros((4, *shape), dtype=np.uint8)
    for k, text in enumerate(rles):
        window = rle_lib.decode_window(text, shape, 0, 0, *shape)
        if window is not None:
            mask[k] = window
    return mask
