"""An ensemble's thresholds tuned at full resolution: the tuning kernel's work.

Each segmenter's run measures full-resolution tables of its own maps only; where several segmenters hold
out the same fold, the threshold search would fall back to their block-averaged maps. Here every
out-of-fold image is predicted again, at full resolution and with the submission's TTA, by the segmenters
that held it out (their ``oof.npz`` says which images), the maps are averaged as ``predict`` averages an
ensemble, and the ensemble's own tables are measured on that average: ``ensemble/oof.npz`` holds them,
with the block-averaged maps beside, in the layout training writes. The threshold search then scores every
image exactly, and ``inference.json``, ``cv.json`` and the search's figure are written for the submission.

The class gate is tuned on what the submission gates with: every image the classifiers held out is predicted
again by those that held it out, with the submission's TTA, averaged as ``predict`` averages them
(``ensemble-classifiers/oof.npz``); a training run's own out-of-fold probabilities are one model's, without TTA,
and averaging changes the calibration. Only the images that both stages held out are tuned on.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from steelkit import atomic, checkpoint, oof, thresholds
from steelkit.competition import agreed_shape, grayscale_is_exact, read_labels
from steelkit.datasets import SteelDataset, loader_workers, samples_from_table, worker_init_fn
from steelkit.ensemble import Ensemble, resolve_devices
from steelkit.errors import UserError
from steelkit.masks import unpack
from steelkit.postprocess import TABLE_PIXEL_GRID, TABLE_SIZE_GRID, full_resolution_stats
from steelkit.predict import InferenceConfig

ENSEMBLE = "ensemble"  # the folder of the ensemble's out-of-fold file, under the tuning output
CLASSIFIERS = "ensemble-classifiers"  # the classifiers' TTA-averaged out-of-fold probabilities (the gate's)


def held_out_by(segmenter_dirs, only: set | None = None) -> tuple[list[str], dict[tuple, list[str]]]:
    """(every out-of-fold image id, in first-seen order; {member indices: the ids exactly they held out}),
    among ``only`` where it is given."""
    members_of: dict[str, list[int]] = {}
    for number, folder in enumerate(segmenter_dirs):
        for image_id in oof.image_ids(oof.file_of(folder)):
            if only is None or image_id in only:
                members_of.setdefault(image_id, []).append(number)
    groups: dict[tuple, list[str]] = {}
    for image_id, members in members_of.items():
        groups.setdefault(tuple(members), []).append(image_id)
    return list(members_of), groups


def held_out_predictions(member_dirs, data_dir: Path, stage: str, config: InferenceConfig, device, show: bool,
                         only: set | None = None):
    """Every out-of-fold image of ``member_dirs`` (among ``only``) predicted by the members that held it out,
    as ``predict`` predicts (mean over members and TTA, at full resolution) -> (ids, shape, a generator of
    (image ids, probabilities on the device, the batch))."""
    member_dirs = [Path(d) for d in member_dirs]
    table = read_labels(data_dir / "train.csv", data_dir / "train_images").set_index("ImageId")
    ids, groups = held_out_by(member_dirs, only)
    if not ids:
        raise UserError(f"none of the {stage}s' out-of-fold images is among the images to tune on (those the "
                        "classifiers held out): train both stages on at least one common fold")
    missing = [i for i in ids if i not in table.index]
    if missing:
        raise UserError(f"{len(missing)} out-of-fold images are not in {data_dir / 'train.csv'}, e.g. {missing[0]}")
    paths = [data_dir / "train_images" / i for i in ids]
    shape, grayscale = agreed_shape(paths, "training images"), grayscale_is_exact(paths)
    devices = resolve_devices(device)

    def batches():
        for members, group_ids in groups.items():
            ensemble = Ensemble([checkpoint_of(member_dirs[m]) for m in members], devices, stage)
            rows = table.loc[group_ids].reset_index()
            dataset = SteelDataset(samples_from_table(rows, data_dir / "train_images"), shape, None, grayscale)
            loader = DataLoader(dataset, batch_size=config.batch_size,
                                num_workers=loader_workers(config.num_workers), worker_init_fn=worker_init_fn)
            for batch in tqdm(loader, desc=f"out-of-fold {stage} predictions of {len(members)} model(s)",
                              disable=not show):
                yield ([group_ids[i] for i in batch["index"].tolist()],
                       ensemble(batch["image"], config.tta, config.amp).float(), batch)
    return ids, shape, batches()


def classifier_oof(classifier_dirs, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   config: InferenceConfig = InferenceConfig(), device=None, show: bool = True) -> Path:
    """The class gate's own probabilities: every image the classifiers held out, predicted by those that held it
    out with the submission's TTA, averaged as ``predict`` averages them -> ``out_dir/ensemble-classifiers/oof.npz``
    (the classifiers' training out-of-fold files are one model's, without TTA: another calibration)."""
    ids, shape, batches = held_out_predictions(classifier_dirs, Path(data_dir), "classifier", config, device, show)
    found = {}
    for batch_ids, probs, _ in batches:
        found.update(zip(batch_ids, probs.cpu().numpy()))
    path = Path(out_dir) / CLASSIFIERS / oof.FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return oof.write(path, ids, "classifier", 1, shape, {oof.CLS_PROBS: np.stack([found[i] for i in ids])})


def ensemble_oof(segmenter_dirs, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 config: InferenceConfig = InferenceConfig(), scale: int = 4, device=None,
                 show: bool = True, only: set | None = None) -> Path:
    """Predict every out-of-fold image (of ``only``, where given) with the segmenters that held it out (mean
    over members and TTA, at full resolution) -> ``out_dir/ensemble/oof.npz`` with full-resolution tables for
    every image."""
    ids, shape, batches = held_out_predictions(segmenter_dirs, Path(data_dir), "segmenter", config, device, show,
                                               only)
    found = {oof.SEG_PROBS: {}, oof.SEG_TABLES: {}, oof.TRUTH_PX: {}}
    for batch_ids, probs, batch in batches:
        truth = unpack(batch["mask"]).numpy() > 0
        tables = full_resolution_stats(probs.cpu().numpy(), truth)
        small = torch.nn.functional.avg_pool2d(probs, scale) if scale > 1 else probs
        maps = (small * 255).round().to(torch.uint8).cpu().numpy()
        for j, image_id in enumerate(batch_ids):
            found[oof.SEG_PROBS][image_id], found[oof.SEG_TABLES][image_id] = maps[j], tables[j]
            found[oof.TRUTH_PX][image_id] = truth[j].sum(axis=(1, 2)).astype(np.int32)
    path = Path(out_dir) / ENSEMBLE / oof.FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return oof.write(path, ids, "segmenter", scale, shape,
                     {oof.TABLE_PIXEL: np.array(TABLE_PIXEL_GRID),
                      oof.TABLE_SIZES: np.array(TABLE_SIZE_GRID),
                      **{key: np.stack([values[i] for i in ids]) for key, values in found.items()}})


def checkpoint_of(folder: Path) -> Path:
    path = folder / checkpoint.BEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {checkpoint.BEST} beside its oof.npz")
    return path


def tune(classifier_dirs, segmenter_dirs, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
         config: InferenceConfig = InferenceConfig(), splits: int = 5, device=None, show: bool = True) -> dict:
    """The tuning kernel: the ensemble's full-resolution tables, the search on them, and
    ``out_dir/inference.json`` (``config`` with the tuned post-processing) and ``out_dir/cv.json``. Only the
    images the classifiers held out too are predicted and searched, and the label thresholds are tuned on the
    classifiers' own predictions with the submission's TTA (``classifier_oof``), as the submission gates."""
    out_dir = Path(out_dir)
    gate = [classifier_oof(classifier_dirs, data_dir, out_dir, config, device, show).parent] if classifier_dirs else []
    # the gate is tuned where both stages held an image out: predicting the rest would spend GPU time for nothing
    only = set(oof.image_ids(oof.file_of(gate[0]))) if gate else None
    ensemble_oof(segmenter_dirs, data_dir, out_dir, config, device=device, show=show, only=only)
    result = thresholds.search(gate, [out_dir / ENSEMBLE], data_dir, splits=splits)
    dataclasses.replace(config, postprocess=result["config"]).save(out_dir / "inference.json")
    write_cv(out_dir / "cv.json", result, members=[str(d) for d in [*classifier_dirs, *segmenter_dirs]])
    return result


def write_cv(path: Path, result: dict, members: list[str]) -> Path:
    """cv.json: the ensemble's out-of-fold mean Dice at the chosen settings and at the seed's, per class."""
    return atomic.write_text(path, json.dumps({**result["cv"], "images": result["images"],
                                               "segmenter_images": result.get("segmenter_images", result["images"]),
                                               "members": members},
                                              indent=2) + "\n")
