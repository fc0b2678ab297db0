"""Threshold search at the competition's full size: 12,568 out-of-fold images (256 x 1600 maps stored at
1/4), one segmenter and three averaged, wall time and peak memory of the search in its own process,
against the targets (60 s, 2 GB on this 2-core machine)."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from steelkit import rle, synthetic

N_IMAGES, SHAPE, SCALE = 12568, (256, 1600), 4
ROOT = Path(__file__).resolve().parents[2]


def make_oof(folder: Path, n: int = N_IMAGES, seed: int = 0, segmenters: int = 1) -> Path:
    """A train.csv with the real class balance and noisy out-of-fold maps around the truth; ``segmenters``
    files of maps (each with its own noise)."""
    rng = np.random.default_rng(seed)
    config = synthetic.SynthConfig()
    small = (SHAPE[0] // SCALE, SHAPE[1] // SCALE)
    ids, rows = [f"{i:09x}.jpg" for i in range(n)], []
    seg = np.zeros((segmenters, n, 4, *small), np.uint8)
    cls = np.zeros((n, 4), np.float32)
    for i, present in enumerate(synthetic.draw_classes(n, rng, config)):
        for k in range(4):
            truth = synthetic.draw_defect(k + 1, *SHAPE, rng)[2] if k + 1 in present else np.zeros(SHAPE, np.uint8)
            rows.append((f"{ids[i]}_{k + 1}", rle.encode(truth)))
            small_truth = cv2.resize(truth.astype(np.float32), small[::-1], interpolation=cv2.INTER_AREA)
            for m in range(segmenters):
                noise = cv2.GaussianBlur(rng.random(small).astype(np.float32), (0, 0), 1.5)
                probs = np.clip((noise - noise.mean()) * 2.5 + 0.25, 0, 1)
                seg[m, i, k] = np.round(np.maximum(probs, small_truth * rng.uniform(0.5, 0.95)) * 255)
            cls[i, k] = np.clip(rng.normal(0.8 if k + 1 in present else 0.2, 0.15), 0, 1)
    (folder / "data" / "train_images").mkdir(parents=True)
    pd.DataFrame(rows, columns=["ImageId_ClassId", "EncodedPixels"]).to_csv(folder / "data" / "train.csv", index=False)
    (folder / "cls").mkdir()
    np.savez(folder / "cls" / "oof.npz", image_ids=np.array(ids), scale=SCALE, shape=np.array(SHAPE),
             stage="classifier", cls_probs=cls)
    for m in range(segmenters):
        (folder / f"seg{m}").mkdir()
        np.savez(folder / f"seg{m}" / "oof.npz", image_ids=np.array(ids), scale=SCALE, shape=np.array(SHAPE),
                 stage="segmenter", seg_probs=seg[m])
    return folder


# peak memory from the kernel's high-water mark of this process (ru_maxrss would carry the parent's over
# fork and exec: the data-making process holds gigabytes)
SEARCH = """
import re, sys, time
from pathlib import Path
from steelkit import thresholds
folder, n = Path(sys.argv[1]), int(sys.argv[2])
start = time.perf_counter()
result = thresholds.search([folder / "cls"], [folder / f"seg{m}" for m in range(n)], folder / "data")
seconds = time.perf_counter() - start
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1])
print(seconds, peak_kb / 1024)
"""


def timed_search(folder: Path, segmenters: int) -> tuple[float, float]:
    """(seconds, peak MB) of the search in a process of its own (the data-making process's memory apart)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, "-c", SEARCH, str(folder), str(segmenters)], capture_output=True,
                          text=True, env=env, check=True)
    seconds, megabytes = map(float, done.stdout.split()[-2:])
    return seconds, megabytes


def run() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        folder = make_oof(Path(tmp), segmenters=3)
        print(f"made {N_IMAGES} out-of-fold images x 3 segmenters in {time.perf_counter() - started:.0f} s")
        for segmenters in (1, 3):
            seconds, megabytes = timed_search(folder, segmenters)
            label = f"threshold search, {N_IMAGES} images, {segmenters} seg"
            rows += [{"benchmark": f"{label} (s)", "ours": seconds, "reference": 60.0, "unit": "s",
                      "ratio": 60.0 / seconds, "target": "<= 60 s", "ok": seconds <= 60},
                     {"benchmark": f"{label} (peak MB)", "ours": megabytes, "reference": 2048.0, "unit": "MB",
                      "ratio": megabytes / 2048.0, "target": "<= 2048 MB", "ok": megabytes <= 2048}]
    return rows
