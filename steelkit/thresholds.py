"""Threshold search on out-of-fold probabilities: per class, the label threshold, pixel threshold, minimum
component size and minimum total area that maximise the Kaggle mean Dice.

Fast enough for the real 12,568-image train set: the maps are thresholded once per pixel-threshold
value (not per grid point); per image the connected components' areas and their overlaps with the
truth are reduced to kept-area and kept-overlap vectors over the component-size grid; every
(label threshold, total area) pair is then scored at once with one matrix product.

Faithful to full resolution: averaging ``oof_scale`` x ``oof_scale`` blocks wipes out fine speckle, so a
search on the stored maps alone picks component and total areas too low. Training therefore measures, on
its full-resolution validation maps, every image's kept area and kept overlap with the truth at each
(pixel threshold, component size) of the grid (``postprocess.full_resolution_stats``, stored in oof.npz as
``seg_tables``), exactly as ``predict`` would post-process. The search uses those numbers for every image
that one segmenter predicted, and the stored maps only for images that several segmenters' maps are
averaged over (full-resolution maps of an average exist nowhere), or files without tables. Areas are
searched in pixels of a 256 x 1600 image and converted, so the result plugs straight into
``PostprocessConfig``; on the stored maps the truth is downscaled as the maps were (a pixel is a defect if
at least half its block is).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from steelkit import oof
from steelkit import rle as rle_lib
from steelkit.competition import RLE_COLUMNS, agreed_shape, read_labels
from steelkit.errors import UserError
from steelkit.postprocess import (
    TABLE_PIXEL_GRID,
    TABLE_SIZE_GRID,
    PostprocessConfig,
    in_pixels,
    kept_by_size,
)

REFERENCE_PX = rle_lib.IMAGE_SHAPE[0] * rle_lib.IMAGE_SHAPE[1]
CHUNK = 64  # stored maps labelled at once by component_stats (64 x 64 x 400: 1.6 M pixels, a few MB)
# a minimum total area larger than the image: the class is never predicted (its best setting when the models
# cannot yet tell it, chosen like any other setting only when it gains on held-out images)
CLASS_OFF_PX = REFERENCE_PX + 1
GRIDS = {
    "label": (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9),
    "pixel": TABLE_PIXEL_GRID,
    "min_component": TABLE_SIZE_GRID,
    "min_total": (0, 200, 400, 600, 900, 1200, 1600, 2000, 2500, 3000, 4000, CLASS_OFF_PX),
}


def class_maps(sources, n_images: int, k: int) -> np.ndarray:
    """Class ``k``'s out-of-fold maps (N, h, w) uint8 = round(255 p), averaged over the segmenters that
    predicted each image (rounded to the nearest level): one class in memory at a time, read in chunks."""
    total, counts = None, np.zeros(n_images, np.uint16)
    for path, rows in sources:
        for start, maps in oof.read_rows(path, oof.SEG_PROBS):
            if total is None:
                total = np.zeros((n_images, *maps.shape[2:]), np.uint16 if len(sources) > 1 else np.uint8)
            where = rows[start:start + len(maps)]
            total[where] += maps[:, k]
            counts[where] += 1
    if len(sources) == 1:
        return total
    out = np.empty(total.shape, np.uint8)
    for start in range(0, n_images, 512):  # the rounded mean, chunk by chunk: no full-size temporaries
        part, count = total[start:start + 512], np.maximum(counts[start:start + 512], 1)[:, None, None]
        out[start:start + 512] = (part + count // 2) // count
    return out


def downscale_truth(table: pd.DataFrame, ids: list[str], shape, scale: int, k: int | None = None) -> np.ndarray:
    """(N, 4, H/s, W/s) bool truth at the out-of-fold maps' resolution (a pixel is a defect when at least
    half its s x s block is); (N, H/s, W/s) for class ``k`` alone (0-based). Empty masks (most of them)
    are never decoded."""
    columns = list(RLE_COLUMNS) if k is None else [RLE_COLUMNS[k]]
    rles = table.set_index("ImageId").loc[ids, columns].to_numpy()
    height, width = shape[0] // scale, shape[1] // scale
    out = np.zeros((len(ids), len(columns), height, width), dtype=bool)
    for n, c in zip(*np.nonzero(rles != "")):
        mask = rle_lib.decode(rles[n, c], shape)
        if scale > 1:  # as the maps were pooled: whole blocks only, a remainder row or column dropped
            out[n, c] = block_sums(mask, scale, height, width) * 2 >= scale * scale
        else:
            out[n, c] = mask.astype(bool)
    return out if k is None else out[:, 0]


def block_sums(mask: np.ndarray, scale: int, height: int, width: int) -> np.ndarray:
    """The (height, width) sums of ``mask``'s ``scale`` x ``scale`` blocks, by strided adds on its transpose
    (``rle.decode``'s masks are transposed views, so rows of the transpose are contiguous): 8x a reshaped sum."""
    columns = mask.T[:width * scale, :height * scale]
    rows = columns[0::scale].astype(np.uint16)
    for i in range(1, scale):
        rows += columns[i::scale]
    sums = rows[:, 0::scale].copy()
    for j in range(1, scale):
        sums += rows[:, j::scale]
    return sums.T


def level_above(threshold: float) -> int:
    """The lowest uint8 level v with v / 255 > ``threshold`` (as float32, as the maps were compared once)."""
    levels = np.arange(256, dtype=np.float32) / np.float32(255.0)
    above = np.flatnonzero(levels > np.float32(threshold))
    return int(above[0]) if above.size else 256


def component_stats(probs: np.ndarray, truth: np.ndarray, pixel_grid, size_grid, images: np.ndarray | None = None,
                    workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For one class: (N, h, w) uint8 maps (round(255 p)) and truth -> kept area and kept overlap with the
    truth, each (len(pixel_grid), len(images), len(size_grid)) float64, after removing components below
    each size; ``images`` (default: all) index ``probs``, and ``truth`` holds theirs in that order.
    Thresholds are compared in the maps' uint8 domain; images go in chunks (``CHUNK``, one labelling each,
    ``postprocess.kept_by_size``) shared among ``workers`` threads (cv2 and numpy release the GIL)."""
    images = np.arange(len(probs)) if images is None else np.asarray(images)
    sizes = np.asarray(size_grid, dtype=np.float64)
    area = np.zeros((len(pixel_grid), len(images), len(size_grid)))
    inter = np.zeros_like(area)
    peaks = np.array([probs[n].max() for n in images], dtype=np.uint8).reshape(-1)

    def chunk(t: int, level: int, rows: np.ndarray) -> None:
        # uint8 maps: ">= level" is "> level - 1"
        area[t, rows], inter[t, rows] = kept_by_size(probs[images[rows]], level - 1, np.flatnonzero(truth[rows]),
                                                     sizes)

    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(workers) as pool:
        jobs = []
        for t, threshold in enumerate(pixel_grid):
            level = level_above(threshold)
            chosen = np.flatnonzero(peaks >= level)
            jobs += [pool.submit(chunk, t, level, chosen[start:start + CHUNK])
                     for start in range(0, len(chosen), CHUNK)]
        for job in jobs:
            job.result()
    return area, inter


def check_same_images(ids: list[str], shape, table: pd.DataFrame, data_dir: Path, folders) -> None:
    """Out-of-fold files are tuned against the labels of the competition they were made on: every image
    of theirs must be one of the data's, and of the data's image size."""
    known = set(table["ImageId"])
    foreign = [i for i in ids if i not in known]
    if foreign:
        raise UserError(f"{len(foreign)} of the {len(ids)} images of the out-of-fold files of "
                        f"{', '.join(map(str, folders))} are not images of {data_dir} (train.csv, train_images), "
                        f"e.g. {foreign[0]}: were they trained on another competition?")
    sample = [data_dir / "train_images" / i for i in ids[:64] if (data_dir / "train_images" / i).is_file()]
    if sample and agreed_shape(sample, f"training images of {data_dir}") != tuple(shape):
        found = agreed_shape(sample)
        raise UserError(f"the out-of-fold files of {', '.join(map(str, folders))} are of {shape[0]}x{shape[1]} "
                        f"images, those of {data_dir} are {found[0]}x{found[1]}")


def search_grids(defaults: PostprocessConfig = PostprocessConfig()) -> dict:
    """The grids the search tries: ``GRIDS`` with ``defaults``' values added, each sorted."""
    seed = {"label": defaults.label_thresholds, "pixel": defaults.pixel_thresholds,
            "min_component": defaults.min_component_px, "min_total": defaults.min_total_px}
    return {name: tuple(sorted(set(values) | set(seed[name]))) for name, values in GRIDS.items()}


def table_rows(sources, n_images: int, grids: dict, shape) -> tuple[np.ndarray, list]:
    """Which images the search can take at full resolution: those one segmenter alone predicted, from a
    file with ``seg_tables`` covering the grids -> (their indices among the ids, per such file (path,
    positions among the ids, rows in the file, pixel-grid columns, size-grid columns))."""
    predicted_by = np.bincount(np.concatenate([rows for _, rows in sources]), minlength=n_images)
    taken, files = [], []
    for path, rows in sources:
        data = oof.open_file(path)
        if oof.SEG_TABLES not in data.files:
            continue
        pixel, sizes = data[oof.TABLE_PIXEL].tolist(), data[oof.TABLE_SIZES].tolist()
        if not (set(grids["pixel"]) <= set(pixel) and set(grids["min_component"]) <= set(sizes)) \
                or oof.meta(data)["shape"] != tuple(shape):
            continue  # tables for other grids (or another image size): this file's maps serve instead
        alone = np.flatnonzero(predicted_by[rows] == 1)
        taken.append(rows[alone])
        files.append((path, rows[alone], alone, [pixel.index(v) for v in grids["pixel"]],
                      [sizes.index(v) for v in grids["min_component"]]))
    return (np.sort(np.concatenate(taken)) if taken else np.zeros(0, np.int64)), files


def score_grid(area: np.ndarray, inter: np.ndarray, truth_area: np.ndarray, cls_probs: np.ndarray,
               label_grid, total_grid) -> np.ndarray:
    """Mean pair Dice of one class for every (label threshold, min total) pair, from one (pixel threshold,
    component size) column: area, inter, truth_area, cls_probs all (N,) -> (labels, totals)."""
    drop = (truth_area == 0).astype(np.float64)  # an empty prediction scores 1 on an empty pair
    total = area + truth_area
    keep_score = np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)
    passes_label = (cls_probs[None, :] >= np.asarray(label_grid)[:, None]).astype(np.float64)
    passes_area = ((area[None, :] >= np.asarray(total_grid)[:, None]) & (area[None, :] > 0)).astype(np.float64)
    return drop.mean() + (passes_label * (keep_score - drop)) @ passes_area.T / len(area)


def search(classifier_dirs, segmenter_dirs, data_dir: str | os.PathLike,
           defaults: PostprocessConfig = PostprocessConfig(), splits: int = 5) -> dict:
    """Tune the post-processing on out-of-fold probabilities -> {"config", "dice" (per class: the seed's
    and the tuned Dice on all images, and the cross-validated ``held_out_gain``), "images", "curves" (per
    class: Dice along the pixel-threshold and total-area grids, for ``figures.threshold_search``)}.

    A class keeps the seed's numbers unless tuning gains on held-out images (``held_out_gain``, ``splits``
    parts): the in-sample gain of the best of ~100,000 settings is partly luck. ``splits=1`` takes the
    in-sample best. "full_resolution" says how many images were scored from full-resolution tables. Only the
    images that the classifiers held out too are scored ("images"; "segmenter_images" counts them all): the
    gate cannot be tuned where there is no classifier probability, as when a campaign trains its classifiers
    on fewer folds than its segmenters."""
    if splits < 1:
        raise UserError(f"splits {splits}: at least 1 (1 takes the in-sample best)")
    ids, sources, meta = oof.map_sources(segmenter_dirs)
    covered = np.arange(len(ids))  # the images scored: those the classifiers held out too
    if classifier_dirs:
        cls_ids, cls, _ = oof.load(classifier_dirs, oof.CLS_PROBS)
        lookup = dict(zip(cls_ids, cls))
        covered = np.array([n for n, i in enumerate(ids) if i in lookup], dtype=np.int64)
        if not covered.size:
            raise UserError(f"none of the {len(ids)} images the segmenters held out has classifier out-of-fold "
                            "probabilities: train both stages on at least one common fold")
        cls = np.stack([lookup[ids[n]] for n in covered])
    else:
        cls = np.ones((len(ids), 4), dtype=np.float32)
    data_dir = Path(data_dir)
    table = read_labels(data_dir / "train.csv", data_dir / "train_images")
    check_same_images(ids, meta["shape"], table, data_dir, segmenter_dirs)
    shape, scale = meta["shape"], meta["scale"]
    map_shape = (shape[0] // scale, shape[1] // scale)
    to_oof_px = map_shape[0] * map_shape[1] / REFERENCE_PX  # reference (256 x 1600) pixels -> oof pixels
    grids = search_grids(defaults)
    if not classifier_dirs:
        grids["label"] = (0.0,)
    size_grid = [v * to_oof_px for v in grids["min_component"]]
    total_grid = in_pixels(grids["min_total"], shape)  # areas are compared in pixels of the full image
    full, table_files = table_rows(sources, len(ids), grids, shape)
    on_maps = np.setdiff1d(covered, full)

    chosen, rows, curves = {f.name: [] for f in dataclasses.fields(PostprocessConfig)}, [], []
    for k in tqdm(range(4), desc="threshold search", unit="class"):
        area = np.zeros((len(grids["pixel"]), len(ids), len(size_grid)))
        inter, truth_area = np.zeros_like(area), np.zeros(len(ids))
        for path, where, file_rows, pixel_cols, size_cols in table_files:  # exact, at full resolution
            data = oof.open_file(path)
            stats = data[oof.SEG_TABLES][file_rows, k][:, pixel_cols][:, :, size_cols]  # (n, pixel, size, 2)
            area[:, where], inter[:, where] = stats[..., 0].transpose(1, 0, 2), stats[..., 1].transpose(1, 0, 2)
            truth_area[where] = data[oof.TRUTH_PX][file_rows, k]
        if on_maps.size:  # the stored maps, block-averaged: their areas counted in full-image pixels
            truth = downscale_truth(table, [ids[i] for i in on_maps], shape, scale, k)
            maps = class_maps(sources, len(ids), k)
            area[:, on_maps], inter[:, on_maps] = (v * scale * scale for v in component_stats(
                maps, truth, grids["pixel"], size_grid, on_maps))
            truth_area[on_maps] = truth.reshape(len(on_maps), -1).sum(axis=1) * scale * scale
            del truth, maps
        if covered.size < len(ids):  # segmenter-only images: no gate to tune on them
            area, inter, truth_area = area[:, covered], inter[:, covered], truth_area[covered]
        grid_of = functools.partial(score_cube, area, inter, truth_area, cls[:, k], grids["label"], total_grid)
        scores = grid_of(slice(None))
        label_default = grids["label"].index(defaults.label_thresholds[k]) if classifier_dirs else 0
        at_default = (grids["pixel"].index(defaults.pixel_thresholds[k]),
                      grids["min_component"].index(defaults.min_component_px[k]), label_default,
                      grids["min_total"].index(defaults.min_total_px[k]))
        if splits >= 2:  # the best setting only where it wins on images it was not chosen on; else the seed's
            held_out = held_out_gain(scores, grid_of, len(covered), at_default, splits)
            t, m, lab, tot = pick(scores, at_default) if held_out > 1e-12 else at_default
        else:  # not cross-validated (splits=1): the in-sample best, its gain unknown
            held_out, (t, m, lab, tot) = float("nan"), pick(scores, at_default)
        default = scores[at_default]
        chosen["label_thresholds"].append(float(grids["label"][lab]) if classifier_dirs else 0.0)
        chosen["pixel_thresholds"].append(float(grids["pixel"][t]))
        chosen["min_component_px"].append(int(grids["min_component"][m]))
        chosen["min_total_px"].append(int(grids["min_total"][tot]))
        off = grids["min_total"][tot] >= CLASS_OFF_PX
        rows.append({"class": k + 1, "default": float(default), "tuned": float(scores[t, m, lab, tot]),
                     "held_out_gain": float(held_out), "held_out": float(default + held_out), "off": bool(off)})
        areas = [i for i, v in enumerate(grids["min_total"]) if v < CLASS_OFF_PX]
        curves.append({  # the tuned Dice along two axes, the other settings at their chosen values
            "pixel": {"grid": list(grids["pixel"]), "dice": scores[:, m, lab, tot].tolist(),
                      "seed": defaults.pixel_thresholds[k], "chosen": None if off else grids["pixel"][t]},
            "min_total": {"grid": [grids["min_total"][i] for i in areas], "dice": scores[t, m, lab, areas].tolist(),
                          "seed": defaults.min_total_px[k], "chosen": None if off else grids["min_total"][tot],
                          "off": float(scores[t, m, lab, -1])}})
    config = PostprocessConfig(**{k: tuple(v) for k, v in chosen.items()})
    dice = pd.DataFrame(rows)
    dice["gain"] = dice["tuned"] - dice["default"]
    # every class is scored over the same images, so the mean over (image, class) pairs is the classes' mean.
    # The local CV is the held-out Dice of the tuning: each part scored at the settings chosen on the others (the
    # in-sample Dice at the chosen settings is the best of ~100,000 tries, scored where it was chosen)
    held = splits >= 2 and len(covered) >= splits
    local = dice["held_out"] if held else dice["tuned"]
    cv = {"mean": float(local.mean()), "per_class": [float(v) for v in local],
          "kind": "held-out" if held else "in-sample (not cross-validated)",
          "held_out_mean": float(dice["held_out"].mean()) if held else None,
          "held_out_per_class": [float(v) for v in dice["held_out"]] if held else None,
          "in_sample_mean": float(dice["tuned"].mean()), "in_sample_per_class": [float(v) for v in dice["tuned"]],
          "seed_mean": float(dice["default"].mean()), "seed_per_class": [float(v) for v in dice["default"]],
          "parts": splits if held else 1, "not_predicted": [int(r["class"]) for r in rows if r["off"]]}
    return {"config": config, "dice": dice, "images": len(covered), "segmenter_images": len(ids), "curves": curves,
            "splits": splits, "full_resolution": int(np.isin(full, covered).sum()), "scale": scale, "cv": cv}


def score_cube(area: np.ndarray, inter: np.ndarray, truth_area: np.ndarray, cls_probs: np.ndarray, label_grid,
               total_grid, index=slice(None)) -> np.ndarray:
    """Mean pair Dice of one class over the images ``index`` for every setting: area and inter
    (pixel, N, component), truth_area and cls_probs (N,) -> (pixel, component, label, total)."""
    return np.stack([np.stack([score_grid(area[t, index, m], inter[t, index, m], truth_area[index], cls_probs[index],
                                          label_grid, total_grid) for m in range(area.shape[2])])
                     for t in range(area.shape[0])])


def pick(scores: np.ndarray, at_default: tuple) -> tuple:
    """The best index of a (pixel, component, label, total) score grid; the default where it ties, else the first
    in grid order among the settings within 1e-9 of the best (ties are common: float sums must not break them)."""
    best = np.unravel_index(int(np.argmax(np.round(scores, 9))), scores.shape)
    return at_default if scores[at_default] >= scores[best] - 1e-12 else tuple(int(i) for i in best)


def held_out_gain(scores: np.ndarray, grid_of, n_images: int, at_default: tuple, splits: int) -> float:
    """Cross-validated gain of tuning over the seed's numbers: the images split into ``splits`` parts (a
    fixed shuffle), each part scored with the setting chosen on the others, against the seed's numbers on
    that part; the mean over all images. A setting that wins only on a few images gains nothing here."""
    if splits < 2 or n_images < splits:
        return 0.0  # too few images to tell a real gain from a lucky one: keep the seed's numbers
    part = np.random.default_rng(0).permutation(n_images) % splits
    gain = 0.0
    for f in range(splits):
        inside = np.flatnonzero(part == f)
        on_part = grid_of(inside)
        rest = (scores * n_images - on_part * len(inside)) / (n_images - len(inside))
        chosen = pick(rest, at_default)
        gain += (on_part[chosen] - on_part[at_default]) * len(inside) / n_images
    return float(gain)


def format_report(result: dict) -> str:
    """Per class: the seed's and the chosen setting's Dice on all images, the held-out gain that decided,
    and the chosen thresholds."""
    dice, config = result["dice"], result["config"]
    splits = result.get("splits", 5)
    lines = [f"threshold search on {result['images']} out-of-fold images (" + (
                 f"{splits}-part cross-validation: a class keeps the seed's numbers unless its held-out gain is "
                 "positive)" if splits >= 2 else "no cross-validation: the in-sample best)"),
             *([f"the gate tuned on the {result['images']} of {result['segmenter_images']} images that the classifiers "
                f"held out too ({result['segmenter_images'] - result['images']} have segmenter maps alone)"]
               if result.get("segmenter_images", result["images"]) > result["images"] else []),
             f"{result.get('full_resolution', 0)} images scored at full resolution (the tables training measured), "
             f"{result['images'] - result.get('full_resolution', 0)} on the stored 1/{result.get('scale', 1)} maps",
             f"{'class':>5} {'default':>8} {'tuned':>8} {'held-out':>9} {'label':>6} {'pixel':>6} {'min_comp':>8} "
             f"{'min_total':>9}"]
    for k, row in dice.iterrows():
        total = "off" if row.get("off") else f"{config.min_total_px[k]:d}"
        lines.append(f"{int(row['class']):>5} {row['default']:8.5f} {row['tuned']:8.5f} {row['held_out_gain']:+9.5f} "
                     f"{config.label_thresholds[k]:6.2f} {config.pixel_thresholds[k]:6.2f} "
                     f"{config.min_component_px[k]:8d} {total:>9}")
    lines.append(f"{'mean':>5} {dice['default'].mean():8.5f} {dice['tuned'].mean():8.5f} "
                 f"{dice['held_out_gain'].mean():+9.5f}")
    for _, row in dice[dice["off"]].iterrows() if "off" in dice else ():
        lines.append(f"class {int(row['class'])}: not predicted (predicting nothing gains on held-out images: the "
                     "models cannot yet tell it)")
    if "cv" in result:
        cv = result["cv"]
        lines.append(f"local CV ({cv.get('kind', 'in-sample')}, {result['images']} images, {cv.get('parts', 1)} "
                     f"part(s)): {cv['mean']:.5f}; in-sample at the chosen settings {cv.get('in_sample_mean', 0):.5f}; "
                     f"at the seed's settings {cv['seed_mean']:.5f}")
    return "\n".join(lines)
