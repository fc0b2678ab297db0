"""Torch datasets over the canonical table: training rows (with pseudo-label rows), and test images.

Items are dicts of tensors: ``image`` (H, W, C) uint8 (C = 1 for grayscale images), ``mask`` (H, W) uint8
with bit k - 1 set for class k (``model_input`` makes the model's input and the (4, H, W) targets on the
device), ``labels`` (4,) uint8 presence derived from the (augmented, cropped) mask, ``pseudo`` bool,
``index``. A training dataset is indexed by ``(epoch, index)`` keys (``EpochSampler``): the item's
augmentation is drawn from that key and the recipe's seed alone.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from steelkit import augment as augment_lib
from steelkit import masks
from steelkit import rle as rle_lib
from steelkit.competition import RLE_COLUMNS, decode_image, refuse_images
from steelkit.errors import UserError


@dataclass(frozen=True)
class Sample:
    """One training image: where it is, its four RLE strings, and whether its labels are pseudo labels."""

    image_path: Path
    rles: tuple[str, str, str, str]
    pseudo: bool = False
    source: str = ""  # the label file the RLEs come from, for error messages


def samples_from_table(table: pd.DataFrame, image_dir: str | os.PathLike, pseudo: bool = False,
                       source: str | os.PathLike = "") -> list[Sample]:
    """One Sample per row of a canonical table, images looked up in ``image_dir``."""
    image_dir = Path(image_dir)
    return [Sample(image_dir / image_id, tuple(rles), pseudo, str(source))
            for image_id, *rles in table[["ImageId", *RLE_COLUMNS]].itertuples(index=False)]


def check_images(paths: list[Path], shape: tuple[int, int], workers: int = 4, grayscale: bool = False) -> None:
    """Read every image once, up front, as training will; raise naming the missing, unreadable or wrongly
    sized ones."""
    def problem(path: Path) -> str | None:
        try:
            found = decode_image(path, grayscale).shape[:2]
        except (OSError, ValueError) as error:
            return str(error)
        return None if found == tuple(shape) else f"image {path}: {found[0]}x{found[1]}, expected {shape[0]}x{shape[1]}"

    with ThreadPoolExecutor(workers) as pool:
        refuse_images([p for p in pool.map(problem, paths) if p], len(paths))


def check_labels(samples: list[Sample], shape: tuple[int, int]) -> None:
    """Parse every RLE of every sample up front; raise naming the file, image, class and problem of each
    bad one (a bad label found only when its batch loads would end a run after hours)."""
    problems = []
    for sample in samples:
        for class_id, text in enumerate(sample.rles, start=1):
            try:
                rle_lib.parse(text, shape)
            except ValueError as error:
                problems.append(f"{sample.source}: image {sample.image_path.name} class {class_id}: {error}")
    if problems:
        listed = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise UserError(f"{len(problems)} training labels cannot be used:\n  {listed}{more}")


class SteelDataset(Dataset):
    """Training (``augment`` given: crops drawn per ``(epoch, index)`` key) or validation (the full image)
    items from Samples; images from ``cache`` (``steelkit.imagecache``) where given, else decoded."""

    def __init__(self, samples: list[Sample], shape: tuple[int, int], augment: augment_lib.Augment | None = None,
                 grayscale: bool = False, cache=None, seed: int = 0):
        self.samples, self.shape, self.augment, self.grayscale = samples, tuple(shape), augment, grayscale
        self.cache, self.seed = cache, seed

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, index: int) -> np.ndarray:
        path = self.samples[index].image_path
        return self.cache.read(path) if self.cache is not None else decode_image(path, self.grayscale)

    def __getitem__(self, key) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        sample = self.samples[index]
        image = self.image(index)
        if self.augment is None:
            mask, labels = masks.pack(sample.rles, self.shape)  # the whole image: runs = presence
        else:
            rng = np.random.default_rng((self.seed, epoch, index))
            draw = augment_lib.draw(self.augment, self.shape, rng)
            image, mask, labels = augment_lib.crop_item(image, sample.rles, self.shape, self.augment.crop, draw)
        return {"image": torch.from_numpy(np.ascontiguousarray(image)), "mask": torch.from_numpy(mask),
                "labels": torch.from_numpy(labels), "pseudo": sample.pseudo, "index": index}


class EpochSampler(Sampler):
    """This rank's share of the epoch's shuffled indices, as ``(epoch, index)`` keys: DistributedSampler's
    order (the recipe's seed and the epoch; every rank its own images, one process all of them), made once
    for a loader whose workers persist across epochs; ``set_epoch`` before each."""

    def __init__(self, dataset: Dataset, seed: int, rank: int = 0, world_size: int = 1):
        self.order = DistributedSampler(dataset, world_size, rank, shuffle=True, seed=seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order.set_epoch(epoch)

    def __iter__(self):
        return ((self.epoch, index) for index in self.order)

    def __len__(self) -> int:
        return len(self.order)


class TestImages(Dataset):
    """Test images for prediction, (H, W, C) uint8 as decoded. An unreadable image gives a zero image and its
    error, not an exception, so that one bad file cannot sink a whole run: ``ok`` False and ``error`` say
    what happened."""

    def __init__(self, paths: list[Path], shape: tuple[int, int], grayscale: bool = False):
        self.paths, self.shape, self.grayscale = list(paths), tuple(shape), grayscale

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        error = ""
        try:
            image = decode_image(self.paths[index], self.grayscale)
            if image.shape[:2] != self.shape:
                raise UserError(f"image {self.paths[index]}: {image.shape[0]}x{image.shape[1]}, "
                                f"expected {self.shape[0]}x{self.shape[1]}")
        except (OSError, ValueError) as failure:
            error = str(failure)
            image = np.zeros((*self.shape, 1 if self.grayscale else 3), dtype=np.uint8)
        return {"image": torch.from_numpy(image), "index": index, "ok": not error, "error": error}


def worker_init_fn(worker_id: int) -> None:
    """The workers are the parallelism: OpenCV's own threads inside them would oversubscribe the cores.
    (Augmentations draw from each item's own stream: nothing to reseed.)"""
    cv2.setNumThreads(0)


def loader_workers(requested: int, world_size: int = 1) -> int:
    """DataLoader workers per process: ``requested``, or for -1 the cores this process may use shared by
    the ``world_size`` processes (Kaggle's 4 cores, 2 DDP processes: 2 each)."""
    if requested >= 0:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // world_size)
