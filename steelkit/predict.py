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

from steelkit import atomic, checkpoint, external, pseudo, submission, tta
from steelkit import rle as rle_lib
from steelkit.competition import RLE_COLUMNS, agreed_shape, grayscale_is_exact, read_table
from steelkit.datasets import TestImages, loader_workers, worker_init_fn
from steelkit.model_input import model_input
from steelkit.models import pad_to_multiple
from steelkit.postprocess import PostprocessConfig, clean_classes


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
            raise ValueError(f"pseudo_low {self.pseudo_low} and pseudo_high {self.pseudo_high}: expected "
                             "0 <= pseudo_low <= pseudo_high <= 1")
        if self.batch_size < 1 or self.num_workers < -1:
            raise ValueError(f"batch_size {self.batch_size} (at least 1), num_workers {self.num_workers} "
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
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of InferenceConfig fields")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        post_fields = {f.name for f in dataclasses.fields(PostprocessConfig)}
        unknown = sorted(set(values) - set(fields)) + sorted(
            f"postprocess.{k}" for k in set(values.get("postprocess", {}) or {}) - post_fields)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; expected {sorted(fields)} and postprocess.{{"
                             f"{', '.join(sorted(post_fields))}}}")
        try:
            post = values.get("postprocess", {})
            values["postprocess"] = PostprocessConfig(**{k: tuple(v) for k, v in post.items()})
            if "tta" in values:
                values["tta"] = tuple(values["tta"])
            for name in ("batch_size", "num_workers"):
                if name in values and type(values[name]) is not int:
                    raise ValueError(f"{name} {values[name]!r}: expected an integer")
            return cls(**values)
        except (TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{path}: {error}") from None


def resolve_devices(device: str | list | None = None) -> list[torch.device]:
    """The devices to predict on: as given ("cpu", "cuda:1", "cuda:0,cuda:1" or a list), else every CUDA
    device (Kaggle's two T4s), else the CPU."""
    if device is None:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [torch.device(f"cuda:{k}") for k in range(count)] or [torch.device("cpu")]
    names = device.split(",") if isinstance(device, str) else list(device)
    return [torch.device(str(name).strip()) for name in names]


class Ensemble:
    """The models of one stage, loaded from checkpoints (each carries its recipe) or TorchScript members
    (``steelkit.external``), spread over
    ``devices``: model i lives on device i mod the number of devices, every batch goes to all of them,
    and the outputs are gathered on the first device and averaged in model order (so one device or
    several give the same numbers)."""

    def __init__(self, checkpoints: list[Path], devices: list[torch.device], stage: str):
        self.paths, self.spatial, self.devices = list(checkpoints), stage == "segmenter", list(devices)
        self.models = []
        for number, path in enumerate(self.paths):
            device = self.devices[number % len(self.devices)]
            if external.is_member(path):  # a TorchScript model with its sidecar
                model, found = external.load_member(path, device)
            else:
                model, recipe = checkpoint.load_model(path, device)
                found = recipe.stage
            if found != stage:
                raise ValueError(f"{path} is a {found}, given as a {stage}")
            if device.type == "cuda":  # as in training: tensor cores want NHWC
                model = model.to(memory_format=torch.channels_last)
            self.models.append((model, device))

    def __len__(self) -> int:
        return len(self.models)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, modes, amp: bool) -> torch.Tensor:
        """uint8 (N, H, W, C) images on any device -> mean probabilities over models and TTA, on the first
        device: (N, 4, H, W) for segmenters, (N, 4) for classifiers. Each device gets the uint8 batch and
        makes the models' input itself (``model_input``), padded to a multiple of 32."""
        copies = {}
        for device in {d for _, d in self.models}:
            padded, (height, width) = pad_to_multiple(model_input(images, device))
            copies[device] = padded.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else padded
        outputs = []  # every model launched before any result is gathered: the devices work side by side
        for model, device in self.models:
            with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                outputs.append(tta.predict(model, copies[device], modes, spatial=self.spatial))
        first = self.devices[0]
        mean = sum(output.to(first) for output in outputs) / len(outputs)
        return mean[..., :height, :width] if self.spatial else mean

    def names(self) -> list[str]:
        return [f"{p.parent.name}/{p.name}" for p in self.paths]


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
        raise ValueError("pseudo labels need a classifier ensemble (the seed's rule reads its probabilities)")
    devices = resolve_devices(device)
    if devices[0].type == "cuda":
        torch.backends.cudnn.benchmark = True  # one image size throughout: pick the fastest kernels once
    image_ids = sample_image_ids(data_dir)
    shape = agreed_shape([data_dir / "test_images" / i for i in image_ids], "test images of the sample")
    segment = Ensemble(segmenters, devices, "segmenter")
    classify = Ensemble(classifiers, devices, "classifier") if classifiers else None
    post = config.postprocess.for_shape(shape)
    label_thresholds = np.array(post.label_thresholds, dtype=np.float32)
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
            passes = cls_probs[j] >= label_thresholds
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
