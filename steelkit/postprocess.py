"""Post-processing, per class, in the seed's order:

1. keep the class only if the classifier ensemble's probability passes its label threshold;
2. keep pixels whose probability is above the pixel threshold;
3. remove 8-connected components of fewer than ``min_component_px`` pixels;
4. drop the whole mask if fewer than ``min_total_px`` pixels remain.

Areas are in pixels of a 256 x 1600 image; ``config.for_shape((H, W))`` (``in_pixels``) rescales them for
other sizes. ``gate`` is step 1; ``clean_mask`` steps 2-4. ``full_resolution_stats`` measures, for the
threshold search, what steps 2 and 3 keep of an image at every (pixel threshold, component size) of a grid,
with the same labelling (``kept_by_size``, which the search runs on the stored maps too).
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from steelkit.errors import UserError
from steelkit.rle import IMAGE_SHAPE


@dataclass(frozen=True)
class PostprocessConfig:
    """Per-class thresholds (classes 1-4); the defaults are the seed's numbers."""

    label_thresholds: tuple[float, ...] = (0.7, 0.7, 0.6, 0.6)
    pixel_thresholds: tuple[float, ...] = (0.55, 0.55, 0.55, 0.55)
    min_component_px: tuple[int, ...] = (150, 150, 150, 150)
    min_total_px: tuple[int, ...] = (600, 600, 900, 2000)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            values = getattr(self, field.name)
            if len(values) != 4:
                raise UserError(f"{field.name} {values}: expected four values, one per class")
        for name in ("label_thresholds", "pixel_thresholds"):
            if not all(0 <= v <= 1 for v in getattr(self, name)):
                raise UserError(f"{name} {getattr(self, name)}: probabilities in [0, 1]")

    def for_shape(self, shape: tuple[int, int]) -> PostprocessConfig:
        """The same config with areas scaled from 256 x 1600 to an image of ``shape``."""
        if tuple(shape) == IMAGE_SHAPE:
            return self
        return dataclasses.replace(self, min_component_px=tuple(in_pixels(self.min_component_px, shape).tolist()),
                                   min_total_px=tuple(in_pixels(self.min_total_px, shape).tolist()))


def clean_mask(probs: np.ndarray, pixel_threshold: float, min_component_px: int, min_total_px: int,
               out: np.ndarray | None = None) -> np.ndarray:
    """Steps 2-4 for one class: (H, W) float32 probabilities -> (H, W) uint8 mask, made in ``out`` (a
    C-contiguous (H, W) uint8 array) where given, so that no image-sized array is made but the labels."""
    if out is None:
        out = np.empty(probs.shape, np.uint8)
    mask = np.greater(probs, pixel_threshold, out=out.view(bool)).view(np.uint8)
    area = cv2.countNonZero(mask)
    # removing components can only lower the area: below the total at first, no labelling is needed
    if area and area >= min_total_px and min_component_px > 1:
        area = drop_small(mask, area, min_component_px)
    if area < min_total_px:
        mask.fill(0)
    return mask


DENSE_SHARE = 0.15  # above this share of foreground pixels, small components are cleared by a whole-image lookup


def component_areas(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One plain 8-connected labelling of a (H, W) uint8 mask and each component's area -> (labels, areas,
    labels at the foreground pixels), ``areas[0]`` the background's. Up to 255 components, the areas come
    from cv2's 8-bit histogram of the labels (``labels`` uint8, no foreground labels); more (the speckle of
    an unsure model), they are counted at the foreground pixels alone (int32). cv2's labelling with
    statistics would cost 3-4 plain labellings."""
    count, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
    if count <= 256:
        labels = labels.astype(np.uint8)
        return labels, cv2.calcHist([labels], [0], None, [count], [0, count]).ravel().astype(np.int64), None
    at = labels[mask.view(bool)]
    return labels, np.bincount(at, minlength=count), at


def drop_small(mask: np.ndarray, area: int, min_component_px: int) -> int:
    """The 8-connected components of ``mask`` (``area`` pixels) under ``min_component_px`` pixels removed, in
    place -> the area left: through cv2's lookup table on 8-bit labels, else cleared at the foreground
    pixels (or, where they are most of the image, by a lookup of every pixel's label)."""
    labels, areas, at = component_areas(mask)
    small = areas < min_component_px
    small[0] = False  # the background
    if not small.any():
        return area
    area -= int(areas[small].sum())
    if at is None:
        keep = np.zeros(256, np.uint8)
        keep[1:len(areas)] = ~small[1:]
        cv2.LUT(labels, keep, dst=mask)
    elif at.size > DENSE_SHARE * mask.size:  # a lookup over the whole image beats writing most of it back
        keep = (~small).view(np.uint8)
        keep[0] = 0
        np.take(keep, labels, out=mask)
    else:
        mask.view(bool)[mask.view(bool)] = ~small[at]
    return area


_pool: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    """Two threads for the four classes of an image (cv2 and numpy release the GIL here); remade in a
    forked child, where the parent's threads do not exist."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(2, thread_name_prefix="postprocess")
    return _pool


def _forget_pool() -> None:
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def gate(cls_probs: np.ndarray, config: PostprocessConfig) -> np.ndarray:
    """Step 1: (..., 4) classifier probabilities -> (..., 4) bool, the classes that pass their label
    thresholds (compared in the probabilities' precision: 0.7 passes 0.7 in float32)."""
    cls_probs = np.asarray(cls_probs)
    return cls_probs >= np.asarray(config.label_thresholds, dtype=cls_probs.dtype)


def postprocess(seg_probs: np.ndarray, cls_probs: np.ndarray, config: PostprocessConfig) -> np.ndarray:
    """(4, H, W) float32 segmenter probabilities + (4, ) float32 classifier probabilities -> (4, H, W) uint8
    masks; a class the classifier turns off is not post-processed at all. Areas in ``config`` are taken as
    pixels of this image (see ``for_shape``)."""
    return clean_classes(seg_probs, config, gate(cls_probs, config))


def clean_classes(seg_probs: np.ndarray, config: PostprocessConfig, classes: np.ndarray) -> np.ndarray:
    """Steps 2-4 for the ``classes`` (a (4,) bool) of one image, the others left empty: (4, H, W) float32
    probabilities -> (4, H, W) uint8 masks. Areas in ``config`` are pixels of this image."""
    masks = np.empty(seg_probs.shape, dtype=np.uint8)

    def clean(k: int) -> None:
        clean_mask(seg_probs[k], config.pixel_thresholds[k], config.min_component_px[k], config.min_total_px[k],
                   out=masks[k])

    classes = np.asarray(classes, bool)
    masks[~classes] = 0  # the others are written whole by clean_mask
    wanted = np.flatnonzero(classes).tolist()
    if len(wanted) > 1:
        list(_threads().map(clean, wanted))
    else:
        for k in wanted:
            clean(k)
    return masks


# the grids of the full-resolution tables training stores (a superset of the search's default grids)
TABLE_PIXEL_GRID = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
TABLE_SIZE_GRID = (0, 50, 100, 150, 200, 300, 500, 800)


def in_pixels(values, shape: tuple[int, int]) -> np.ndarray:
    """Areas in pixels of a 256 x 1600 image -> pixels of an image of ``shape`` (what ``for_shape`` gives the
    config, and the search scores)."""
    ratio = shape[0] * shape[1] / (IMAGE_SHAPE[0] * IMAGE_SHAPE[1])
    return np.array([int(round(v * ratio)) for v in values], dtype=np.int64)


def kept_by_size(maps: np.ndarray, above, truth_at: np.ndarray, sizes) -> tuple[np.ndarray, np.ndarray]:
    """The tables' kernel. For a stack of (n, h, w) maps, kept where ``> above`` (compared in the maps' own
    dtype), and the flat indices of their truth pixels (``np.flatnonzero`` of the (n, h, w) truth): the area kept
    and its overlap with the truth after removing the 8-connected components under each of ``sizes``
    (ascending) -> two (n, len(sizes)) float64.

    One plain labelling for the whole stack (the masks one under the other, a blank row between them, so no
    component crosses from one to the next) and bincounts, no Python loop per image or size. A single map's
    areas come, as ``component_areas``'s do, from cv2's 8-bit histogram when it has under 256 components."""
    n, height, width = maps.shape
    if list(sizes) != sorted(sizes):
        raise ValueError(f"sizes {list(sizes)}: expected ascending")
    if n == 1:
        stack = (maps[0] > above).view(np.uint8)
        masks = stack.view(bool)[None]
    else:
        stack = np.zeros((n, height + 1, width), np.uint8)
        masks = stack[:, :height].view(bool)
        np.greater(maps, above, out=masks)
        stack = stack.reshape(-1, width)
        truth_at = truth_at + truth_at // (height * width) * width  # past each blank row above it
    count, labels = cv2.connectedComponents(stack, connectivity=8, ltype=cv2.CV_32S)
    if n == 1 and count <= 256:
        labels = labels.astype(np.uint8)
        areas = cv2.calcHist([labels], [0], None, [count], [0, count]).ravel()[1:]
        image_of = np.zeros(count - 1, np.int64)
    else:
        at = labels.reshape(n, -1, width)[:, :height][masks]  # every foreground pixel's component, in order
        areas = np.bincount(at, minlength=count)[1:]
        image_of = np.zeros(count, np.int64)
        image_of[at] = np.repeat(np.arange(n), np.count_nonzero(masks.reshape(n, -1), axis=1))
        image_of = image_of[1:]
    overlaps = np.bincount(labels.reshape(-1)[truth_at], minlength=count)[1:]  # truth off the masks: label 0
    # each component counts for every size up to its own area: bucket it by image and by how many sizes it
    # passes, then sum the buckets from the largest down
    bucket = image_of * (len(sizes) + 1) + np.searchsorted(sizes, areas, side="right")
    kept = np.stack([np.bincount(bucket, weights=w, minlength=n * (len(sizes) + 1)) for w in (areas, overlaps)])
    kept = kept.reshape(2, n, len(sizes) + 1)[..., ::-1].cumsum(axis=-1)[..., ::-1][..., 1:]
    return kept[0], kept[1]


def full_resolution_stats(probs: np.ndarray, truth: np.ndarray, pixel_grid=TABLE_PIXEL_GRID,
                          size_grid=TABLE_SIZE_GRID, workers: int | None = None) -> np.ndarray:
    """Per image and class, at full resolution: the area kept and its overlap with the truth after
    ``probs > t`` and removing 8-connected components under each size, for every (t, size) of the grids
    (sizes in pixels of a 256 x 1600 image, scaled to this one as ``predict`` scales them): (N, 4, H, W)
    float32 probabilities and (N, 4, H, W) truth -> (N, 4, len(pixel_grid), len(size_grid), 2) int32
    (kept area, kept overlap). What the search needs of an image, without its map: ``kept_by_size`` map by
    map (one full-resolution map is already a labelling's worth), shared among ``workers`` threads."""
    if list(pixel_grid) != sorted(pixel_grid):
        raise ValueError(f"pixel_grid {pixel_grid}: expected ascending thresholds")
    sizes = in_pixels(size_grid, probs.shape[-2:])
    out = np.zeros((len(probs), 4, len(pixel_grid), len(sizes), 2), np.int32)

    def one(n: int, k: int) -> None:
        truth_at, peak = np.flatnonzero(truth[n, k]), probs[n, k].max()
        for t, threshold in enumerate(pixel_grid):
            if not peak > np.float32(threshold):
                break  # this threshold keeps nothing, nor do the higher ones
            area, overlap = kept_by_size(probs[n, k][None], np.float32(threshold), truth_at, sizes)
            out[n, k, t, :, 0], out[n, k, t, :, 1] = area[0], overlap[0]

    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:  # cv2 releases the GIL
        for job in [pool.submit(one, n, k) for n in range(len(probs)) for k in range(4)]:
            job.result()
    return out
