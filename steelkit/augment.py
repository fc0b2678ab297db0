"""Augmentations: albumentations pipelines, and the seed's defect blackout as a real transform.

The blackout blacks out one defect region of the image and removes it from the mask, so that the
classification label (derived from the mask after augmentation) follows. Its math is two pure
functions; the class only draws which region, from albumentations' own random state.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.core.transforms_interface import BaseTransformInitSchema, DualTransform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def blackout_image(image: np.ndarray, region: np.ndarray, fill: float = 0) -> np.ndarray:
    """A copy of (H, W, C) ``image`` with the pixels of (H, W) bool ``region`` set to ``fill``."""
    out = image.copy()
    out[region] = fill
    return out


def blackout_mask(mask: np.ndarray, region: np.ndarray) -> np.ndarray:
    """A copy of (H, W, 4) ``mask`` with every class cleared inside (H, W) bool ``region``."""
    out = mask.copy()
    out[region] = 0
    return out


def defect_regions(mask: np.ndarray) -> list[np.ndarray]:
    """The defect regions of an (H, W, 4) mask: each 8-connected component of each class, as (H, W) bool."""
    regions = []
    for channel in range(mask.shape[2]):
        layer = np.ascontiguousarray(mask[:, :, channel], dtype=np.uint8)
        if not layer.any():
            continue
        count, labels = cv2.connectedComponents(layer, connectivity=8)
        regions += [labels == k for k in range(1, count)]
    return regions


class DefectBlackout(DualTransform):
    """Black out one defect region (a connected component of one class) and drop it from the mask.

    Targets: image, mask ((H, W, 4), one channel per class). Image types: uint8, float32.
    """

    class InitSchema(BaseTransformInitSchema):
        fill: float

    def __init__(self, fill: float = 0, p: float = 0.5):
        super().__init__(p=p)
        self.fill = fill

    @property
    def targets_as_params(self) -> list[str]:
        return ["mask"]

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        regions = defect_regions(data["mask"])
        return {"region": regions[self.py_random.randrange(len(regions))] if regions else None}

    def apply(self, img: np.ndarray, region: np.ndarray | None = None, **params: Any) -> np.ndarray:
        return img if region is None else blackout_image(img, region, self.fill)

    def apply_to_mask(self, mask: np.ndarray, region: np.ndarray | None = None, **params: Any) -> np.ndarray:
        return mask if region is None else blackout_mask(mask, region)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("fill",)


def train_transform(recipe, image_shape: tuple[int, int]) -> A.Compose:
    """The training pipeline of a recipe: blackout, random crop, flips, brightness/contrast, normalise."""
    height, width = image_shape
    crop = (min(recipe.crop_height or height, height), min(recipe.crop_width or width, width))
    steps = []
    if recipe.blackout > 0:
        # before the crop, so that the region is chosen from the whole image's defects
        steps.append(DefectBlackout(p=recipe.blackout))
    if crop != (height, width):
        steps.append(A.RandomCrop(*crop))
    steps += [A.HorizontalFlip(p=recipe.hflip), A.VerticalFlip(p=recipe.vflip),
              A.RandomBrightnessContrast(p=recipe.brightness_contrast),
              A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)]
    return A.Compose(steps, seed=recipe.seed)


def eval_transform() -> A.Compose:
    """Validation and test: the full image, normalised."""
    return A.Compose([A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)])
