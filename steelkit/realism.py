"""How close a synthetic competition is to the real one: per-image texture statistics, per-class defect areas
and components per mask, class presence, and a two-sample distance (Kolmogorov-Smirnov) per statistic.

Statistics are scale-free where images differ in size: areas are counted in pixels of a 256 x 1600 image,
the large-scale texture is the standard deviation after an area downscale by 16 (16 x 100 for 256 x 1600).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from steelkit import rle as rle_lib
from steelkit.competition import CLASSES, RLE_COLUMNS, decode_image, read_labels
from steelkit.errors import UserError

REFERENCE_PX = 256 * 1600
DARK_COLUMN = 25  # a column whose mean is below this is past the sheet's edge
DARK_BAND_SHARE = 0.02  # an image has a dark band when at least this share of its columns is dark
TEXTURE = ("mean intensity", "intensity std", "16 x 100 downscale std", "mean Sobel gradient")


def image_statistics(gray: np.ndarray) -> dict:
    """One grayscale (H, W) uint8 image -> its texture statistics (the names of ``TEXTURE``) and whether it
    has a dark off-sheet band."""
    pixels = gray.astype(np.float32)
    height, width = gray.shape
    coarse = cv2.resize(pixels, (max(1, width // 16), max(1, height // 16)), interpolation=cv2.INTER_AREA)
    gx, gy = cv2.Sobel(pixels, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(pixels, cv2.CV_32F, 0, 1, ksize=3)
    columns = pixels.mean(axis=0)
    return {"mean intensity": float(pixels.mean()), "intensity std": float(pixels.std()),
            "16 x 100 downscale std": float(coarse.std()), "mean Sobel gradient": float(cv2.magnitude(gx, gy).mean()),
            "dark band": bool((columns < DARK_COLUMN).mean() >= DARK_BAND_SHARE)}


def mask_statistics(table: pd.DataFrame, shape: tuple[int, int]) -> dict:
    """The canonical label table of images of ``shape`` -> {"area k": areas in 256 x 1600 pixels, "components
    k": 8-connected components per mask, for each class k present; "presence": (N, 4) bool}."""
    scale = REFERENCE_PX / (shape[0] * shape[1])
    out = {f"{what} {k}": [] for k in CLASSES for what in ("area", "components")}
    presence = np.zeros((len(table), 4), dtype=bool)
    for row, rles in enumerate(table[list(RLE_COLUMNS)].itertuples(index=False)):
        for k, text in zip(CLASSES, rles):
            if not text:
                continue
            mask = np.ascontiguousarray(rle_lib.decode(text, shape))
            presence[row, k - 1] = True
            out[f"area {k}"].append(float(mask.sum()) * scale)
            out[f"components {k}"].append(cv2.connectedComponents(mask, connectivity=8)[0] - 1)
    return {**{key: np.array(values, dtype=np.float64) for key, values in out.items()}, "presence": presence}


def folder_statistics(image_dir: str | os.PathLike, labels: str | os.PathLike | None = None,
                      limit: int | None = None) -> dict:
    """Texture statistics of the images in ``image_dir`` (up to ``limit``, sorted), and with ``labels`` (a
    train.csv in either schema) their mask statistics."""
    paths = sorted(p for p in Path(image_dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    if not paths:
        raise UserError(f"{image_dir}: no images")
    per_image = [image_statistics(decode_image(p, grayscale=True)[:, :, 0]) for p in paths]
    found = {name: np.array([s[name] for s in per_image], dtype=np.float64) for name in [*TEXTURE, "dark band"]}
    if labels is not None:
        shape = decode_image(paths[0], grayscale=True).shape[:2]
        table = read_labels(labels, image_dir)
        table = table[table["ImageId"].isin({p.name for p in paths})]
        found.update(mask_statistics(table, shape))
    return found


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs (0: the
    same distribution, 1: disjoint); nan when either sample is empty."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    if not a.size or not b.size:
        return float("nan")
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, side="right") / a.size
                                - np.searchsorted(b, grid, side="right") / b.size)))


def compare(synthetic: dict, real: dict) -> list[dict]:
    """Rows of statistic, synthetic and real medians (and 95th percentiles for areas), sample sizes, and the
    two-sample distance, for every statistic both sides have."""
    rows = []
    for key in [*(f"area {k}" for k in CLASSES), *(f"components {k}" for k in CLASSES), *TEXTURE]:
        if key not in synthetic or key not in real:
            continue
        ours, theirs = synthetic[key], real[key]
        row = {"statistic": key if key in TEXTURE else f"class {key.split()[1]} {key.split()[0]}",
               "synthetic": _percentiles(ours), "real": _percentiles(theirs), "n": (len(ours), len(theirs)),
               "distance": ks_distance(ours, theirs)}
        rows.append(row)
    rows.append({"statistic": "share with a dark band", "synthetic": _share(synthetic["dark band"]),
                 "real": _share(real["dark band"]), "n": (len(synthetic["dark band"]), len(real["dark band"])),
                 "distance": abs(np.mean(synthetic["dark band"]) - np.mean(real["dark band"]))})
    if "presence" in synthetic and "presence" in real:
        for k in CLASSES:
            ours, theirs = synthetic["presence"][:, k - 1], real["presence"][:, k - 1]
            rows.append({"statistic": f"class {k} share of images", "synthetic": _share(ours), "real": _share(theirs),
                         "n": (len(ours), len(theirs)), "distance": abs(ours.mean() - theirs.mean())})
    return rows


def _percentiles(values: np.ndarray) -> str:
    if not len(values):
        return "-"
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return f"{p50:,.1f} ({p5:,.1f}-{p95:,.1f})" if p95 < 100 else f"{p50:,.0f} ({p5:,.0f}-{p95:,.0f})"


def _share(flags: np.ndarray) -> str:
    return f"{np.mean(flags):.2f}" if len(flags) else "-"


def format_table(rows: list[dict]) -> str:
    """The comparison as a Markdown table: medians (5th-95th percentiles), sizes, distances."""
    lines = ["| statistic | synthetic median (5%-95%) | real median (5%-95%) | n synthetic / real | distance |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['statistic']} | {row['synthetic']} | {row['real']} | {row['n'][0]} / {row['n'][1]} "
                     f"| {row['distance']:.2f} |")
    return "\n".join(lines)
