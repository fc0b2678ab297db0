"""Torch datasets over the canonical table: training rows (with pseudo-label rows), and test images.

Items are dicts of tensors: ``image`` (3, H, W) float32 normalised, ``mask`` (4, H, W) uint8 in {0, 1},
``labels`` (4,) uint8 presence derived from the (augmented, cropped) mask, ``pseudo`` bool, ``index``.
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
from torch.utils.data import Dataset, get_worker_info

from steelkit import rle as rle_lib
from steelkit.competition import RLE_COLUMNS, decode_row, read_image


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
            found = read_image(path, grayscale).shape[:2]
        except (OSError, ValueError) as error:
            return str(error)
        return None if found == tuple(shape) else f"image {path}: {found[0]}x{found[1]}, expected {shape[0]}x{shape[1]}"

    with ThreadPoolExecutor(workers) as pool:
        problems = [p for p in pool.map(problem, paths) if p]
    if problems:
        listed = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ValueError(f"{len(problems)} of {len(paths)} training images cannot be used:\n  {listed}{more}")


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
        raise ValueError(f"{len(problems)} training labels cannot be used:\n  {listed}{more}")


class SteelDataset(Dataset):
    """Training or validation items from Samples, through an albumentations pipeline."""

    def __init__(self, samples: list[Sample], shape: tuple[int, int], transform, grayscale: bool = False):
        self.samples, self.shape, self.transform, self.grayscale = samples, tuple(shape), transform, grayscale

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image = read_image(sample.image_path, self.grayscale)
        mask = np.moveaxis(decode_row(sample.rles, self.shape), 0, -1)  # (H, W, 4) for albumentations
        out = self.transform(image=image, mask=mask)
        # uint8 until the device: a quarter of the bytes to copy; the loss makes it float there
        mask = torch.from_numpy(np.ascontiguousarray(out["mask"].transpose(2, 0, 1)))
        return {"image": torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1))),
                "mask": mask, "labels": mask.amax(dim=(1, 2)), "pseudo": sample.pseudo, "index": index}


class TestImages(Dataset):
    """Test images for prediction. An unreadable image gives a zero image and its error, not an exception,
    so that one bad file cannot sink a whole run: ``ok`` False and ``error`` say what happened."""

    def __init__(self, paths: list[Path], shape: tuple[int, int], transform, grayscale: bool = False):
        self.paths, self.shape, self.transform, self.grayscale = list(paths), tuple(shape), transform, grayscale

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        error = ""
        try:
            image = read_image(self.paths[index], self.grayscale)
            if image.shape[:2] != self.shape:
                raise ValueError(f"image {self.paths[index]}: {image.shape[0]}x{image.shape[1]}, "
                                 f"expected {self.shape[0]}x{self.shape[1]}")
        except (OSError, ValueError) as failure:
            error = str(failure)
            image = np.zeros((*self.shape, 3), dtype=np.uint8)
        image = self.transform(image=image)["image"]
        return {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), "index": index,
                "ok": not error, "error": error}


def worker_init_fn(worker_id: int) -> None:
    """Reseed each DataLoader worker's albumentations pipeline (2.0.8 does not do it: every worker
    would draw the same augmentations) from torch's per-worker seed, so runs stay reproducible."""
    cv2.setNumThreads(0)  # the workers are the parallelism: OpenCV's own threads would oversubscribe the cores
    info = get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info else None
    if transform is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed(torch.initial_seed() % 2**32)
