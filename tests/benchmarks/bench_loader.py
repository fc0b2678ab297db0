"""The training input pipeline per item, one core, side by side with its floors, on real-sized 256 x 1600
JPEGs (a synthetic competition the benchmark makes, with its labels) and, where the folder is there, on the
real images of ``../shared/real-samples`` (read in place; ``STEELKIT_REAL_SAMPLES`` names another):

- training item, cold (decoding) vs grayscale decode + 256 x 512 crop + tensor;
- training item, warm (the image cache filled) vs a 256 x 512 crop copied from the cache, flipped, tensor;
- validation item (full image and mask) and prediction item vs decode + tensor;
- items/s of a 2-worker DataLoader (cold) vs 2 x the one-core cold floor. On two cores torch's transfer of
  each batch through shared memory (the cap below: about as many items a second as 2 x the floor) shares
  them with the decoding, so the target is the rate of items at the cold item's own target (1.5 x the floor)
  with that transfer's cost added: ``1 / (1.5 * floor / 2 + 1 / cap)``, as a share of 2 x the floor;
- items/s of a 2-worker DataLoader, warm, training crops and validation images, vs the DataLoader's own cap:
  the items/s of items of the same sizes that cost nothing to make.

The training budget's ``LOADER_SECONDS`` are the warm rows' core-seconds an item (2 cores / items a second).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from steelkit import imagecache, synthetic
from steelkit.augment import train_augment
from steelkit.competition import decode_image, read_labels
from steelkit.datasets import EpochSampler, SteelDataset, TestImages, samples_from_table, worker_init_fn
from steelkit.recipe import preset
from tests.benchmarks.timing import side_by_side

SHAPE, CROP = (256, 1600), (256, 512)
PRESETS = ("cls-effb1", "seg-fpn-effb3")
COLD_TARGET = 1.5  # a training item decoding its image, at most this many times its floor
# A 2-worker DataLoader's rate swings between runs on two cores more than one-core timings do: the cold rows
# read 0.41-0.48 x the floor in the runs recorded here (the model above says 0.45-0.47), the warm crops
# 0.59-0.79 x the cap. Its targets allow 15%.
LOADER_NOISE = 0.85
WARM_SHARE = 0.6  # a warm loader of crops at this share of what the DataLoader carries for free items


def image_sets(folder: Path) -> dict[str, tuple[Path, Path]]:
    """{name: (label CSV, image folder)}: a synthetic set made in ``folder``, and the real samples if there."""
    made = synthetic.make(folder / "synthetic", synthetic.SynthConfig(n_train=32, n_test=1, seed=11))
    sets = {"synthetic": (made / "train.csv", made / "train_images")}
    beside = Path(__file__).resolve().parents[3] / "shared" / "real-samples"  # ../shared/real-samples
    real = Path(os.environ.get("STEELKIT_REAL_SAMPLES", beside))
    if (real / "train_images.csv").is_file() and (real / "train_images").is_dir():
        sets["real"] = (real / "train_images.csv", real / "train_images")
    return sets


def floor_cold(path: Path, left: int = 544) -> torch.Tensor:
    image = decode_image(path, grayscale=True)
    return torch.from_numpy(np.ascontiguousarray(image[:, left:left + CROP[1]]))


def rows_for(name: str, labels: Path, images: Path, cache_dir: Path) -> list[dict]:
    table = read_labels(labels, images)
    samples = samples_from_table(table, images)
    paths = [s.image_path for s in samples]
    keys = [(epoch, i) for epoch in range(2) for i in range(len(samples))]
    cache = imagecache.ImageCache.create(cache_dir, paths, SHAPE, 1)
    cache.fill(workers=1)
    rows = []

    def cold_floor(key):
        return floor_cold(paths[key[1]])

    def warm_floor(key):  # the crop copied out of the cache, flipped, as a tensor
        return torch.from_numpy(np.ascontiguousarray(cache.read(paths[key[1]])[:, 544:544 + CROP[1]][::-1, ::-1]))

    for recipe_name in PRESETS:
        recipe = preset(recipe_name)
        cold = SteelDataset(samples, SHAPE, train_augment(recipe, SHAPE), True, None, recipe.seed)
        warm = SteelDataset(samples, SHAPE, train_augment(recipe, SHAPE), True, cache, recipe.seed)
        cold_s, floor_s = side_by_side(cold.__getitem__, cold_floor, keys)
        rows.append(_row(f"{recipe_name} train item, cold vs floor ({name})", cold_s, floor_s, COLD_TARGET))
        warm_s, floor_s = side_by_side(warm.__getitem__, warm_floor, keys)
        rows.append({**_row(f"{recipe_name} train item, warm vs floor ({name})", warm_s, floor_s, None),
                     "target": "<= 3 ms", "ok": warm_s <= 0.003})
    indices = list(range(len(paths)))

    def full_floor(index):
        return torch.from_numpy(decode_image(paths[index], True))

    valid, test = SteelDataset(samples, SHAPE, None, True), TestImages(paths, SHAPE, True)
    rows.append(_row(f"validation item (image + mask) vs decode ({name})",
                     *side_by_side(valid.__getitem__, full_floor, indices), 1.5))
    rows.append(_row(f"prediction item vs decode ({name})", *side_by_side(test.__getitem__, full_floor, indices), 1.3))
    cold_floor_s = side_by_side(cold_floor, cold_floor, keys)[1]
    recipe = preset("seg-fpn-effb3")
    dataset = SteelDataset(samples * 8, SHAPE, train_augment(recipe, SHAPE), True, None, recipe.seed)
    ours = items_per_second(dataset, recipe.batch_size)
    cap = items_per_second(Constant(CROP), recipe.batch_size)
    share = LOADER_NOISE / (COLD_TARGET * cold_floor_s / 2 + 1 / cap) * cold_floor_s / 2  # of 2 x the floor
    rows.append({"benchmark": f"2-worker loader, cold, vs 2 x floor ({name})", "ours": ours,
                 "reference": 2 / cold_floor_s, "unit": "/s", "digits": 0, "ratio": ours * cold_floor_s / 2,
                 "target": f">= {share:.2f}x", "ok": ours * cold_floor_s / 2 >= share})
    for what, data, batch in (
            ("train crops", SteelDataset(samples * 8, SHAPE, train_augment(recipe, SHAPE), True, cache, recipe.seed),
             recipe.batch_size),
            ("val images", SteelDataset(samples * 2, SHAPE, None, True, cache), recipe.val_batch_size)):
        ours = items_per_second(data, batch)
        limit = cap if what == "train crops" else items_per_second(Constant(SHAPE), batch)
        rows.append({"benchmark": f"2-worker loader, warm {what}, vs cap ({name})", "ours": ours,
                     "reference": limit, "unit": "/s", "digits": 0, "ratio": ours / limit,
                     "target": f">= {WARM_SHARE * LOADER_NOISE:.2f}x", "ok": ours / limit >= WARM_SHARE * LOADER_NOISE})
    cache.remove()
    return rows


def items_per_second(dataset, batch_size: int) -> float:
    """Items a second out of a 2-worker DataLoader whose workers persist, best of 3 epochs."""
    sampler = EpochSampler(dataset, 0)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=2, worker_init_fn=worker_init_fn,
                        persistent_workers=True)
    next(iter(loader))  # the workers started
    best = float("inf")
    for epoch in range(3):
        sampler.set_epoch(epoch)
        started = time.perf_counter()
        items = sum(len(batch["image"]) for batch in loader)
        best = min(best, (time.perf_counter() - started) / items)
    return 1 / best


class Constant(torch.utils.data.Dataset):
    """Items of a training crop's (or a full image's) size and kind that cost nothing: what the DataLoader's
    own transfer (collation into shared memory, the trip to the main process) allows."""

    def __init__(self, shape: tuple[int, int] = CROP):
        self.shape = shape

    def __len__(self) -> int:
        return 256

    def __getitem__(self, key) -> dict:
        return {"image": torch.zeros((*self.shape, 1), dtype=torch.uint8),
                "mask": torch.zeros(self.shape, dtype=torch.uint8), "labels": torch.zeros(4, dtype=torch.uint8),
                "pseudo": False, "index": key[1] if isinstance(key, tuple) else key}


def _row(label: str, ours_s: float, floor_s: float, limit: float | None) -> dict:
    ratio = ours_s / floor_s
    return {"benchmark": label, "ours": ours_s * 1e3, "reference": floor_s * 1e3, "unit": "ms", "ratio": ratio,
            "target": f"<= {limit:g}x" if limit else "", "ok": limit is None or ratio <= limit}


def run() -> list[dict]:
    cv2.setNumThreads(0)  # one core, as in a DataLoader worker
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as folder:
            rows = []
            for name, (labels, images) in image_sets(Path(folder)).items():
                rows += rows_for(name, labels, images, Path(folder))
            return rows
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(-1)
