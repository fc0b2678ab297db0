"""A synthetic mini-competition in the exact Kaggle layout, for the demo, the rehearsal and the tests.

``make(out, SynthConfig(...))`` writes ``train_images/``, ``test_images/``, ``train.csv`` (long schema,
defect rows only), ``sample_submission.csv`` (today's schema, one row per test image) and, beside them,
``test_truth.csv``: the hidden truth of the test images in the wide schema (every pair explicit).

The classes present follow the real train set (``statistics.md``): its sets of classes in their real shares
(never 1 and 4 together), ``empty_fraction`` of the images defect-free. The sheets look like steel: a
brightness from dark to bright, uneven lighting, broad mottling, tall streaks and rolling marks along the
columns, stains, fine grain, and on a fifth of the images a dark band past the sheet's edge. Each class's
mask draws its total area and its number of components from the real percentiles (class 3 and 4 regions up
to about 100,000 px of a 256 x 1600 image), class 2 thin and tall, class 4 large and dark; the defects are
drawn into the sheet's own texture (a smeared, blotchy change of its intensity) and labelled by coarse
outlines around them, never past the sheet's edge. ``steelkit synth --compare REAL_DIR`` measures how close
it comes (``steelkit.realism``).
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
from steelkit.errors import UserError

REAL_CLASS_ROWS = np.array([897, 247, 5150, 801], dtype=np.float64)  # defect rows per class, train.csv
# images of the real train set per set of classes present (statistics.md; the two with three classes left out)
REAL_COMBINATIONS = {(): 5902, (1,): 767, (2,): 193, (3,): 4757, (4,): 516, (1, 2): 37, (1, 3): 93, (2, 3): 16,
                     (2, 4): 1, (3, 4): 284}
PERCENTS = (0.05, 0.25, 0.50, 0.75, 0.95)
# the real masks' 5 / 25 / 50 / 75 / 95th percentiles (statistics.md): area in px of 256 x 1600, components
REAL_AREAS = {1: (798, 1762, 3326, 5795, 11502), 2: (989, 1948, 2944, 4338, 7138),
              3: (1829, 5054, 11954, 29030, 94007), 4: (5115, 13114, 25357, 45221, 98530)}
REAL_COMPONENTS = {1: (1, 1, 2, 5, 11), 2: (1, 1, 1, 2, 2), 3: (1, 1, 2, 4, 7), 4: (1, 1, 2, 3, 6)}
DARK_BAND_SHARE = 0.2  # real images with a dark off-sheet band at the left or right edge


@dataclass(frozen=True)
class SynthConfig:
    """Size and balance of a synthetic competition."""

    n_train: int = 200
    n_test: int = 100
    height: int = 256
    width: int = 1600
    seed: int = 0
    empty_fraction: float = 0.47
    texture: float = 1.0  # the sheets' texture: 1 = the real sheets' statistics; lower = calmer (tiny models)
    train_schema: str = "long"  # or "wide": the schema train.csv and sample_submission.csv are written in

    def __post_init__(self):
        if self.n_train < 1 or self.n_test < 1:
            raise UserError(f"need at least one train and one test image, got {self.n_train}, {self.n_test}")
        if self.height < 32 or self.width < 32:
            raise UserError(f"images of {self.height}x{self.width} are too small (32x32 at least)")
        if not 0 <= self.texture <= 2:
            raise UserError(f"texture {self.texture}: expected 0 (flat sheets) to 2 (twice the real texture)")
        if self.train_schema not in ("long", "wide"):
            raise UserError(f"train_schema {self.train_schema!r}: expected 'long' or 'wide'")


def draw_classes(n_images: int, rng: np.random.Generator, config: SynthConfig) -> list[tuple[int, ...]]:
    """The classes present on each of ``n_images``: the real sets of classes in their real shares (never 1
    and 4 together), ``empty_fraction`` of the images defect-free; every class at least once when there are
    at least four defective images."""
    n_defective = n_images - int(round(n_images * config.empty_fraction))
    sets = [c for c in REAL_COMBINATIONS if c]
    weights = np.array([REAL_COMBINATIONS[c] for c in sets], dtype=np.float64)
    chosen = [sets[i] for i in rng.choice(len(sets), size=n_defective, p=weights / weights.sum())]
    if n_defective >= 4:
        for class_id in CLASSES:  # a class the draw missed replaces a single-class image of the commonest class
            if not any(class_id in c for c in chosen):
                at = next(i for i, c in enumerate(chosen) if len(c) == 1 and sum(class_id in d for d in chosen) == 0
                          and sum(c == d for d in chosen) > 1)
                chosen[at] = (class_id,)
    chosen += [()] * (n_images - n_defective)
    order = rng.permutation(n_images)
    return [chosen[i] for i in order]


def from_percentiles(percentiles, rng: np.random.Generator, log: bool = True) -> float:
    """A draw from the distribution whose 5 / 25 / 50 / 75 / 95th percentiles are ``percentiles``: its
    quantile function interpolated between them (in logs for areas), the tails extended at the slope of the
    outer intervals to the 1st and 99th."""
    values = np.log(percentiles) if log else np.asarray(percentiles, dtype=np.float64)
    low = values[0] - (values[1] - values[0]) * 0.04 / 0.20
    high = values[-1] + (values[-1] - values[-2]) * 0.04 / 0.20
    x = rng.uniform(0.01, 0.99)
    value = float(np.interp(x, (0.01, *PERCENTS, 0.99), (low, *values, high)))
    return float(np.exp(value)) if log else value


def _field(height: int, width: int, cells: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth noise of unit standard deviation: ``cells`` (rows, columns) of normal values, upsampled."""
    coarse = rng.standard_normal(cells, dtype=np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return field / max(float(field.std()), 1e-6)


def background(height: int, width: int, rng: np.random.Generator, texture: float = 1.0) -> np.ndarray:
    """A steel-like (H, W) float32 sheet: a brightness from dark to bright, large-scale mottling and stains,
    rolling marks along the columns at several widths, and fine grain at a strength of its own; ``texture``
    scales all but the brightness (1: the real sheets')."""
    level = from_percentiles((62, 85, 99, 113, 133), rng, log=False)
    strength = texture * from_percentiles((15, 25, 33, 43, 64), rng)  # the large-scale texture's std
    image = np.full((height, width), level, np.float32)
    image += strength * 0.6 * _field(height, width, (2, 3), rng)  # uneven lighting across the sheet
    image += strength * 0.45 * _field(height, width, (4, 25), rng)  # broad mottling
    image += strength * 0.15 * _field(height, width, (3, 120), rng)  # tall streaks along the rolling direction
    columns = sum(cv2.GaussianBlur(rng.standard_normal((1, width), dtype=np.float32), (0, 0), sigma)[0] * gain
                  for sigma, gain in ((0.8, 1.0), (4.0, 2.5), (20.0, 4.0)))
    image += strength / 8 * columns[None, :] * (0.6 + 0.4 * _field(height, width, (3, 10), rng))  # rolling marks
    small = (max(1, height // 8), max(1, width // 8))
    stains = np.zeros(small, np.float32)
    yy, xx = np.ogrid[:small[0], :small[1]]
    for _ in range(int(rng.integers(0, 4))):  # stains: large soft blotches, darker or brighter
        cx, cy = rng.uniform(0, small[1]), rng.uniform(0, small[0])
        ax, ay = rng.uniform(0.03, 0.2) * small[1], rng.uniform(0.2, 0.8) * small[0]
        blotch = np.exp(-(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2))
        stains += rng.choice([-1.0, 1.0]) * rng.uniform(8, 25) * texture * blotch
    image += cv2.resize(stains, (width, height), interpolation=cv2.INTER_LINEAR)
    grain = texture * from_percentiles((1.5, 5.5, 10.7, 15.7, 23.0), rng)  # fine texture (the gradient's)
    noise = rng.standard_normal((height, width), dtype=np.float32)
    image += grain * cv2.GaussianBlur(noise, (0, 0), sigmaX=0.6, sigmaY=1.2) * 1.6
    return image


def sheet_columns(width: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """The sheet's columns [first, last) and which side a dark off-sheet band is on (0: none, -1: left, 1:
    right): a quarter of the images see past the sheet's edge, a band from a sliver to most of the image."""
    if rng.random() >= DARK_BAND_SHARE:
        return 0, width, 0
    share = from_percentiles((0.03, 0.1, 0.4, 0.9, 0.97), rng)
    band = int(min(max(share, 0.02), 0.97) * width)
    return (band, width, -1) if rng.random() < 0.5 else (0, width - band, 1)


def dark_band(image: np.ndarray, first: int, last: int, side: int, rng: np.random.Generator) -> None:
    """Black out, in place, the columns past the sheet's edge (a slowly wavy line with a bright rim)."""
    if side == 0:
        return
    height, width = image.shape
    wobble = cv2.resize(rng.standard_normal((4, 1), dtype=np.float32), (1, height), interpolation=cv2.INTER_CUBIC)
    edge = (first if side < 0 else last) + (wobble[:, 0] * 2).round().astype(int)
    columns = np.arange(width)[None, :]
    outside = columns < edge[:, None] if side < 0 else columns >= edge[:, None]
    distance = np.abs(columns - edge[:, None]).astype(np.float32)
    image += rng.uniform(10, 40) * np.exp(-distance / 2.5) * ~outside  # the lit rim of the sheet's edge
    image[outside] = rng.uniform(3, 14) + 1.5 * rng.standard_normal(int(outside.sum()), dtype=np.float32)


def _outline(center: tuple[float, float], axes: tuple[float, float], rng: np.random.Generator,
             roughness: float) -> np.ndarray:
    """A coarse polygon (an annotator's outline) around an ellipse of ``axes`` with a wavy radius."""
    n = 16
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 2 * np.pi / n)
    radius = 1 + sum(rng.uniform(-roughness, roughness) / k * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
                     for k in (2, 3, 4))
    points = np.stack([center[0] + axes[0] * radius * np.cos(angles), center[1] + axes[1] * radius * np.sin(angles)], 1)
    return points.round().astype(np.int32)


# per class: the outline's width / height, its roughness, the share of the outline the defect fills, the grain of
# that fill (blur sigma of the noise it is cut from, px of a 256-high image) and how much taller than wide its
# smear is, the intensity change (sign: -1 darker, 0 either; range), as visible as the real defects are
LOOKS = {1: dict(aspect=(0.6, 2.0), rough=0.35, fill=(0.15, 0.35), grain=1.0, smear=1.5, change=(-1, 45, 85)),
         2: dict(aspect=(0.05, 0.25), rough=0.2, fill=(0.25, 0.5), grain=0.8, smear=4.0, change=(-1, 45, 80)),
         3: dict(aspect=(0.15, 3.0), rough=0.4, fill=(0.4, 0.75), grain=1.5, smear=5.0, change=(-1, 35, 70)),
         4: dict(aspect=(0.5, 3.0), rough=0.45, fill=(0.6, 0.9), grain=2.5, smear=2.0, change=(-1, 50, 90))}


def draw_defect(class_id: int, height: int, width: int, rng: np.random.Generator, sheet: tuple[int, int] = None,
                area: float | None = None):
    """One defect region of ``class_id`` inside the sheet's columns: (appearance (H, W) float32 in [0, 1], the
    intensity change at full appearance, label (H, W) uint8 outline). ``area``: the outline's pixels (default:
    drawn from the real class's areas, scaled to this image size)."""
    first, last = sheet or (0, width)
    look = LOOKS[class_id]
    scale = height * width / (256 * 1600)
    area = area or from_percentiles(REAL_AREAS[class_id], rng) * scale
    aspect = float(np.exp(rng.uniform(*np.log(look["aspect"]))))
    half_h = min(np.sqrt(area / (np.pi * aspect)), height * 0.55)
    half_w = min(area / (np.pi * half_h), (last - first) * 0.5)
    cx = rng.uniform(first + half_w, max(first + half_w, last - half_w))  # the outline inside the sheet
    cy = rng.uniform(half_h, max(half_h, height - half_h))
    label = np.zeros((height, width), np.uint8)
    outline = _outline((cx, cy), (half_w, half_h), rng, look["rough"])
    cv2.fillPoly(label, [outline], 1)
    label[:, :first], label[:, last:] = 0, 0  # never past the sheet's edge
    drawn = int(cv2.countNonZero(label))
    if 0 < drawn < 0.85 * area:  # clipped by the image's or the sheet's edges: grown once to make up for it
        grow = min(np.sqrt(area / drawn), 2.0)
        outline = ((outline - (cx, cy)) * grow + (cx, cy)).round().astype(np.int32)
        label[:] = 0
        cv2.fillPoly(label, [outline], 1)
        label[:, :first], label[:, last:] = 0, 0
    appearance = np.zeros((height, width), np.float32)
    ys, xs = np.nonzero(label)
    if not len(ys):
        return appearance, 0.0, label
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    box = label[top:bottom, left:right].astype(np.float32)
    sigma = max(0.6, look["grain"] * height / 256)
    cut = cv2.GaussianBlur(rng.standard_normal(box.shape, dtype=np.float32), (0, 0), sigmaX=sigma,
                           sigmaY=sigma * look["smear"])  # smeared along the rolling direction
    if class_id == 2:  # thin and tall: the fill follows a few vertical lines
        lines = np.zeros(box.shape[1], np.float32)
        lines[rng.integers(0, box.shape[1], size=int(rng.integers(1, 4)))] = 3.0
        cut += cv2.GaussianBlur(lines[None, :], (0, 0), 1.0) * 3
    inner = cv2.erode(box, np.ones((3, 3), np.uint8), iterations=max(1, int(2 * height / 256)))
    keep = np.quantile(cut[box > 0], 1 - rng.uniform(*look["fill"]))
    patch = np.clip((cut - keep) / max(float(cut.std()), 1e-6) * 4, 0, 1) * np.maximum(inner, 0.25 * box)
    patch *= np.clip(0.8 + 0.35 * rng.standard_normal(box.shape, dtype=np.float32), 0, 1.5)  # a grain of its own
    appearance[top:bottom, left:right] = cv2.GaussianBlur(patch, (0, 0), 0.7) * box  # inside its outline
    sign, low, high = look["change"]
    change = rng.uniform(low, high) * (sign or rng.choice([-1.0, 1.0]))
    return appearance, float(change), label


def render(classes: tuple[int, ...], height: int, width: int, rng: np.random.Generator, texture: float = 1.0):
    """One image with the given defect classes: ((H, W, 3) uint8, (4, H, W) uint8 labels, the sheet's columns
    [first, last)). Each class's mask
    holds a number of components and a total area drawn from the real ones; the defects change the sheet's
    own texture (darker or brighter by a share of it), the labels outline them coarsely."""
    image = background(height, width, rng, texture)
    first, last, side = sheet_columns(width, rng)
    labels = np.zeros((len(CLASSES), height, width), dtype=np.uint8)
    scale = height * width / (256 * 1600)
    for class_id in classes:
        total = from_percentiles(REAL_AREAS[class_id], rng) * scale
        pieces = max(1, int(round(from_percentiles(REAL_COMPONENTS[class_id], rng, log=False))))
        shares = rng.dirichlet(np.full(pieces, 1.5))
        for share in shares:
            appearance, change, label = draw_defect(class_id, height, width, rng, (first, last), total * share)
            x, y, w, h = cv2.boundingRect(label)  # the change is drawn into the sheet's own texture there
            window = image[y:y + h, x:x + w]
            window += appearance[y:y + h, x:x + w] * change * np.clip(window / 100, 0.4, 1.6)
            labels[class_id - 1] |= label
    dark_band(image, first, last, side, rng)
    gray = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2), labels, (first, last)


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
        image, labels, _ = render(present, config.height, config.width, rng, config.texture)
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
