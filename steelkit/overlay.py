"""Pictures of masks over images: truth outlines thick, prediction outlines thin, one colour per class."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from steelkit.competition import RLE_COLUMNS, decode_row, read_image

CLASS_COLOURS = ((255, 64, 64), (64, 255, 64), (64, 128, 255), (255, 200, 0))  # RGB, classes 1-4


def draw(image: np.ndarray, truth: np.ndarray | None, pred: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB image with (4, H, W) truth (thick) and prediction (thin) outlines -> new image."""
    out = image.copy()
    for k, colour in enumerate(CLASS_COLOURS):
        for masks, thickness in ((truth, 2), (pred, 1)):
            if masks is None or not masks[k].any():
                continue
            contours, _ = cv2.findContours(np.ascontiguousarray(masks[k], dtype=np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, colour, thickness)
    return out


def legend(width: int) -> np.ndarray:
    """A strip naming the class colours and the line styles."""
    strip = np.full((18, width, 3), 255, dtype=np.uint8)
    x = 4
    for k, colour in enumerate(CLASS_COLOURS):
        cv2.putText(strip, f"class {k + 1}", (x, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
        x += 75
    cv2.putText(strip, "thick: truth, thin: prediction", (x + 10, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    return strip


def write_overlays(image_dir: str | os.PathLike, pred: pd.DataFrame, truth: pd.DataFrame | None,
                   out_dir: str | os.PathLike, shape, limit: int = 12) -> list[Path]:
    """One PNG per image for up to ``limit`` images with a defect in the truth or the prediction."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_by_id = truth.set_index("ImageId") if truth is not None else None
    written = []
    for image_id, *rles in pred[["ImageId", *RLE_COLUMNS]].itertuples(index=False):
        truth_rles = truth_by_id.loc[image_id, list(RLE_COLUMNS)].tolist() \
            if truth_by_id is not None and image_id in truth_by_id.index else None
        if not any(rles) and not any(truth_rles or []):
            continue
        try:  # a picture is a courtesy: a missing or broken image skips it, never the run
            image = read_image(Path(image_dir) / image_id)
        except (OSError, ValueError) as error:
            warnings.warn(f"no overlay picture for {image_id}: {error}", stacklevel=2)
            continue
        picture = draw(image, decode_row(truth_rles, shape) if truth_rles else None, decode_row(rles, shape))
        picture = np.concatenate([legend(picture.shape[1]), picture])
        path = out_dir / f"{Path(image_id).stem}.png"
        cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        written.append(path)
        if len(written) >= limit:
            break
    return written
