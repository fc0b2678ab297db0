"""A synthetic mini-competition in the exact Kaggle layout, for the demo, the rehearsal and the tests.

``make(out, SynthConfig(...))`` writes ``train_images/``, ``test_images/``, ``train.csv`` (long schema,
defect rows only), ``sample_submission.csv`` (today's schema, one row per test image) and, beside them,
``test_truth.csv``: the hidden truth of the test images in the wide schema (every pair explicit).

The class balance follows the real data (COMPETITION.md): about 47% of images defect-free, class 3 by
far the most common, class 2 the rarest, a few images with two classes, never 1 and 4 together. Each
class has its own look: class 1 clusters of small bright pits, class 2 short thin dark marks, class 3
long scratches and patches, class 4 large dark blotches. Labels are coarse polygons drawn around the
defect, as the real annotators' are.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from steelkit import atomic
from steelkit import rle as rle_lib
from steelkit.competition import CLASSES, RLE_COLUMNS

REAL_CLASS_ROWS = np.array([897, 247, 5150, 801], dtype=np.float64)  # defect rows per class, train.csv


@dataclass(frozen=True)
class SynthConfig:
    """Size and balance of a synthetic competition."""

    n_train: int = 200
    n_test: int = 100
    height: int = 256
    width: int = 1600
    seed: int = 0
    empty_fraction: float = 0.47
    second_class_fraction: float = 0.06
    train_schema: str = "long"  # or "wide": the schema train.csv and sample_submission.csv are written in

    def __post_init__(self):
        if self.n_train < 1 or self.n_test < 1:
            raise ValueError(f"need at least one train and one test image, got {self.n_train}, {self.n_test}")
        if self.height < 32 or self.width < 32:
            raise ValueError(f"images of {self.height}x{self.width} are too small (32x32 at least)")
        if self.train_schema not in ("long", "wide"):
            raise ValueError(f"train_schema {self.train_schema!r}: expected 'long' or 'wide'")


def draw_classes(n_images: int, rng: np.random.Generator, config: SynthConfig) -> list[tuple[int, ...]]:
    """The classes present on each of ``n_images``, with the real balance; every class at least once
    when there are at least four defective images."""
    n_defective = n_images - int(round(n_images * config.empty_fraction))
    probs = REAL_CLASS_ROWS / REAL_CLASS_ROWS.sum()
    chosen: list[tuple[int, ...]] = []
    for i in range(n_defective):
        first = CLASSES[i] if n_defective >= 4 and i < 4 else int(rng.choice(CLASSES, p=probs))
        classes = {first}
        if rng.random() < config.second_class_fraction:
            others = [c for c in CLASSES if c != first and {c, first} != {1, 4}]
            weights = REAL_CLASS_ROWS[[c - 1 for c in others]]
            classes.add(int(rng.choice(others, p=weights / weights.sum())))
        chosen.append(tuple(sorted(classes)))
    chosen += [()] * (n_images - n_defective)
    order = rng.permutation(n_images)
    return [chosen[i] for i in order]


def background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A steel-like (H, W) float32 background: grey level, rolling streaks along the width, noise."""
    base = rng.uniform(85, 135)
    streaks = cv2.GaussianBlur(rng.normal(0, 6, (1, width)).astype(np.float32), (0, 0), sigmaX=4)
    rows = cv2.GaussianBlur(rng.normal(0, 4, (height, 1)).astype(np.float32), (0, 0), sigmaX=8)
    noise = rng.normal(0, 5, (height, width)).astype(np.float32)
    return base + streaks + rows + noise


def _coarse_polygon(region: np.ndarray, margin: int, scale: float) -> np.ndarray:
    """The annotator's view of a defect: a coarse polygon around the dilated region, filled."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    grown = cv2.dilate(region, kernel)
    contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    label = np.zeros_like(region)
    polygons = [cv2.approxPolyDP(c, max(1.0, 3 * scale), True) for c in contours]
    cv2.fillPoly(label, polygons, 1)
    return label


def _random_polygon(center, radius: float, rng: np.random.Generator, n: int = 10) -> np.ndarray:
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.55, 1.0, n)
    points = np.stack([center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles) * 0.6], axis=1)
    return points.round().astype(np.int32)


def draw_defect(class_id: int, height: int, width: int, rng: np.random.Generator):
    """One defect of ``class_id``: (region (H, W) uint8, intensity change float, label (H, W) uint8)."""
    scale = height / 256
    region = np.zeros((height, width), dtype=np.uint8)
    cx, cy = rng.uniform(0.05, 0.95) * width, rng.uniform(0.15, 0.85) * height
    if class_id == 1:  # a cluster of small bright pits
        spread = rng.uniform(10, 25) * scale
        for _ in range(rng.integers(6, 16)):
            x, y = cx + rng.normal(0, spread), cy + rng.normal(0, spread * 0.7)
            cv2.circle(region, (int(x), int(y)), max(1, int(rng.uniform(1.5, 4) * scale)), 1, -1)
        delta, margin = rng.uniform(45, 70), int(6 * scale) + 1
    elif class_id == 2:  # short thin dark marks, roughly vertical
        for _ in range(rng.integers(1, 4)):
            length = rng.uniform(20, 50) * scale
            angle = rng.normal(np.pi / 2, 0.3)
            x0, y0 = cx + rng.normal(0, 8 * scale), cy
            x1, y1 = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
            cv2.line(region, (int(x0), int(y0)), (int(x1), int(y1)), 1, max(1, int(2 * scale)))
        delta, margin = -rng.uniform(50, 70), int(4 * scale) + 1
    elif class_id == 3 and rng.random() < 0.6:  # a long scratch along the rolling direction
        length = rng.uniform(0.15, 0.5) * width
        x = np.linspace(cx - length / 2, cx + length / 2, 12)
        y = cy + np.cumsum(rng.normal(0, 3 * scale, 12))
        cv2.polylines(region, [np.stack([x, y], 1).astype(np.int32)], False, 1, max(2, int(rng.uniform(3, 7) * scale)))
        delta, margin = -rng.uniform(40, 60), int(5 * scale) + 1
    elif class_id == 3:  # a patch
        cv2.fillPoly(region, [_random_polygon((cx, cy), rng.uniform(25, 70) * scale, rng)], 1)
        delta, margin = -rng.uniform(30, 45), int(3 * scale) + 1
    else:  # class 4: a large dark blotch
        cv2.fillPoly(region, [_random_polygon((cx, cy), rng.uniform(60, 130) * scale, rng, n=14)], 1)
        delta, margin = -rng.uniform(60, 85), int(4 * scale) + 1
    return region, delta, _coarse_polygon(region, margin, scale)


def render(classes: tuple[int, ...], height: int, width: int, rng: np.random.Generator):
    """One image with the given defect classes: ((H, W, 3) uint8, (4, H, W) uint8 labels)."""
    image = background(height, width, rng)
    labels = np.zeros((len(CLASSES), height, width), dtype=np.uint8)
    for class_id in classes:
        for _ in range(2 if class_id == 3 and rng.random() < 0.3 else 1):
            region, delta, label = draw_defect(class_id, height, width, rng)
            texture = rng.normal(1.0, 0.15, (height, width)).astype(np.float32)
            image += cv2.GaussianBlur(region.astype(np.float32), (3, 3), 0) * delta * texture
            labels[class_id - 1] |= label
    gray = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2), labels


def _image_ids(n: int, rng: np.random.Generator, taken: set[str]) -> list[str]:
    ids: list[str] = []
    while len(ids) < n:
        name = f"{int(rng.integers(0, 16**9)):09x}.jpg"
        if name not in taken:
            taken.add(name)
            ids.append(name)
    return sorted(ids)


def _write_images(folder: Path, ids: list[str], classes: list[tuple[int, ...]], config: SynthConfig,
                  rng: np.random.Generator) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for image_id, present in zip(ids, classes):
        image, labels = render(present, config.height, config.width, rng)
        if not cv2.imwrite(str(folder / image_id), image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise OSError(f"could not write {folder / image_id}")
        rows.append({"ImageId": image_id, **{col: rle_lib.encode(m) for col, m in zip(RLE_COLUMNS, labels)}})
    return pd.DataFrame(rows, columns=["ImageId", *RLE_COLUMNS])


def long_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Canonical table -> long schema rows (ImageId, ClassId, EncodedPixels), defect rows only."""
    rows = [(image, c, r) for image, *rles in table[["ImageId", *RLE_COLUMNS]].itertuples(index=False)
            for c, r in zip(CLASSES, rles) if r]
    return pd.DataFrame(rows, columns=["ImageId", "ClassId", "EncodedPixels"])


def wide_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Canonical table -> wide schema rows (ImageId_ClassId, EncodedPixels), four per image."""
    rows = [(f"{image}_{c}", r) for image, *rles in table[["ImageId", *RLE_COLUMNS]].itertuples(index=False)
            for c, r in zip(CLASSES, rles)]
    return pd.DataFrame(rows, columns=["ImageId_ClassId", "EncodedPixels"])


def make(out: str | os.PathLike, config: SynthConfig = SynthConfig(), replace: bool = False) -> Path:
    """Write a synthetic competition into ``out`` (see the module docstring); return ``out``.

    ``out`` must be empty or absent: new CSVs over old images would label visible defects defect-free.
    With ``replace``, a folder holding a competition (train.csv or sample_submission.csv) is replaced
    whole: the new one is written beside it, then swapped in."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not replace:
            raise FileExistsError(f"{out} is not empty; choose an empty folder, or replace the competition "
                                  "there whole (--replace)")
        if not ((out / "train.csv").is_file() or (out / "sample_submission.csv").is_file()):
            raise FileExistsError(f"{out} does not hold a competition (no train.csv or sample_submission.csv); "
                                  "refusing to replace it")
        staging = out.with_name(f".{out.name}.new")
        shutil.rmtree(staging, ignore_errors=True)
        make(staging, config)
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old)
        return out
    rng = np.random.default_rng(config.seed)
    taken: set[str] = set()
    train_ids, test_ids = _image_ids(config.n_train, rng, taken), _image_ids(config.n_test, rng, taken)
    train = _write_images(out / "train_images", train_ids, draw_classes(config.n_train, rng, config), config, rng)
    test = _write_images(out / "test_images", test_ids, draw_classes(config.n_test, rng, config), config, rng)
    full = f"1 {config.height * config.width}"
    if config.train_schema == "long":
        atomic.write_csv(long_rows(train), out / "train.csv")
        sample = pd.DataFrame({"ImageId": test_ids, "EncodedPixels": full, "ClassId": 0})
    else:
        atomic.write_csv(wide_rows(train), out / "train.csv")
        sample = pd.DataFrame({"ImageId_ClassId": [f"{i}_{c}" for i in test_ids for c in CLASSES],
                               "EncodedPixels": full})
    atomic.write_csv(sample, out / "sample_submission.csv")
    atomic.write_csv(wide_rows(test), out / "test_truth.csv")
    return out
