"""Prediction: classifier and segmenter ensembles with TTA, streamed over the test images.

For each batch: the segmenters' TTA-averaged probabilities (N, 4, H, W) and the classifiers' (N, 4),
post-processing per image, RLE, then the batch is dropped: memory does not grow with the test set.
An unreadable test image gets empty predictions and a warning that names it; the run goes on.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from steelkit import atomic, fields, pseudo, submission, tta
from steelkit import rle as rle_lib
from steelkit.competition import RLE_COLUMNS, agreed_shape, grayscale_is_exact, read_table
from steelkit.datasets import TestImages, loader_workers, worker_init_fn
from steelkit.ensemble import Ensemble, resolve_devices
from steelkit.errors import UserError
from steelkit.postprocess import PostprocessConfig, clean_classes, gate


@dataclass(frozen=True)
class InferenceConfig:
    """Everything ``predict`` needs besides the models; saved as JSON beside every submission."""

    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    tta: tuple[str, ...] = ("none", "hflip", "vflip")
    batch_size: int = 8
    num_workers: int = -1  # -1 = the cores present
    amp: bool = True  # on CUDA only
    pseudo_high: float = 0.95
    pseudo_low: float = 0.05

    def __post_init__(self):
        tta.check_modes(self.tta)
        if not 0 <= self.pseudo_low <= self.pseudo_high <= 1:
            raise UserError(f"pseudo_low {self.pseudo_low} and pseudo_high {self.pseudo_high}: expected "
                            "0 <= pseudo_low <= pseudo_high <= 1")
        if self.batch_size < 1 or self.num_workers < -1:
            raise UserError(f"batch_size {self.batch_size} (at least 1), num_workers {self.num_workers} "
                            "(-1: from the cores, or 0 or more)")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def save(self, path: str | os.PathLike) -> Path:
        return atomic.write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> InferenceConfig:
        """Read an inference.json; a bad file, key, type or value raises ValueError naming the file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"inference config {path}: no such file")
        try:
            values = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path}: not valid JSON ({error})") from None
        return fields.from_values(cls, values, str(path))


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def steady_heap(threshold_bytes: int = 4 << 20) -> None:
    """Fix glibc's mmap threshold (it otherwise rises as big blocks are freed, after which they come
    from the heap and fragment it): blocks of 4 MB and more are then mapped and returned on free, and
    peak memory no longer creeps up with the number of test images. A no-op where libc is not glibc."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, threshold_bytes)
    except (OSError, AttributeError):
        pass


def sample_image_ids(data_dir: Path) -> list[str]:
    """The test images to predict, in the order of ``sample_submission.csv``."""
    return read_table(data_dir / "sample_submission.csv", sample=True)[0]["ImageId"].tolist()


def predict(data_dir: str | os.PathLike, classifiers: list[Path], segmenters: list[Path],
            out_csv: str | os.PathLike | None,
            config: InferenceConfig = InferenceConfig(), pseudo_out: str | os.PathLike | None = None,
            pseudo_round: int = 1, device: str | None = None) -> dict:
    """Predict the test set of ``data_dir`` and write ``out_csv`` (None: no submission) and the pseudo labels;
    return a summary."""
    data_dir = Path(data_dir)
    for path, what in ((out_csv, "submission"), (pseudo_out, "pseudo labels")):
        if path is not None:
            atomic.check_writable(path, what)  # before the work, not after an hour of it
    if pseudo_out is not None and not classifiers:
        raise UserError("pseudo labels need a classifier ensemble (the seed's rule reads its probabilities)")
    devices = resolve_devices(device)
    if devices[0].type == "cuda":
        torch.backends.cudnn.benchmark = True  # one image size throughout: pick the fastest kernels once
    image_ids = sample_image_ids(data_dir)
    shape = agreed_shape([data_dir / "test_images" / i for i in image_ids], "test images of the sample")
    segment = Ensemble(segmenters, devices, "segmenter")
    classify = Ensemble(classifiers, devices, "classifier") if classifiers else None
    post = config.postprocess.for_shape(shape)
    models = ";".join((classify.names() if classify else []) + segment.names())

    test_paths = [data_dir / "test_images" / i for i in image_ids]
    dataset = TestImages(test_paths, shape, grayscale_is_exact(test_paths))
    workers = loader_workers(config.num_workers)
    loader = DataLoader(dataset, batch_size=config.batch_size, num_workers=workers, worker_init_fn=worker_init_fn,
                        pin_memory=devices[0].type == "cuda", prefetch_factor=4 if workers else None)
    rows, pseudo_rows, failed = [], [], []
    steady_heap()
    for batch in tqdm(loader, desc="predict", unit="batch"):
        images = batch["image"]
        seg_probs = segment(images, config.tta, config.amp).cpu().numpy()
        cls_probs = (classify(images, config.tta, config.amp).cpu().numpy() if classify
                     else np.ones((len(images), 4), dtype=np.float32))
        for j, index in enumerate(batch["index"].tolist()):
            image_id = image_ids[index]
            if not batch["ok"][j]:
                warnings.warn(f"{batch['error'][j]}; writing empty predictions for {image_id}", stacklevel=2)
                failed.append(image_id)
                rows.append((image_id, "", "", "", ""))
                continue
            # the classifier's gating first: a class it turns off is not post-processed, unless the
            # pseudo-label rule needs the segmentation alone (every probability confident)
            passes = gate(cls_probs[j], post)
            wanted = pseudo_out is not None and classify and pseudo.confident(
                cls_probs[j], config.pseudo_high, config.pseudo_low)
            seg_masks = clean_classes(seg_probs[j], post, np.ones(4, bool) if wanted else passes)
            masks = seg_masks * passes[:, None, None].astype(np.uint8)
            rles = [rle_lib.encode(m) for m in masks]
            rows.append((image_id, *rles))
            if wanted and pseudo.choose(cls_probs[j], seg_masks.any(axis=(1, 2)), config.pseudo_high,
                                        config.pseudo_low):
                pseudo_rows += pseudo.pseudo_rows(image_id, rles, pseudo_round, models)
    table = pd.DataFrame(rows, columns=["ImageId", *RLE_COLUMNS])
    if out_csv is not None:
        out_csv = submission.write(table, data_dir / "sample_submission.csv", out_csv, shape)
        config.save(Path(out_csv).with_suffix(".inference.json"))
    summary = {"submission": out_csv, "images": len(image_ids), "failed": failed, "table": table, "shape": shape}
    if pseudo_out is not None:
        summary["pseudo"] = pseudo.write_pseudo_labels(pseudo_rows, pseudo_out)
        summary["pseudo_images"] = len(pseudo_rows) // 4
    return summary
