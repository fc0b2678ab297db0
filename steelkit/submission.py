"""Writing and validating ``submission.csv`` in the schema and row order of ``sample_submission.csv``.

Wide sample (``ImageId_ClassId,EncodedPixels``): one row per sample row, same order. Long sample
(``ImageId,EncodedPixels,ClassId``, today's one row per image): four rows per image, ClassId 1-4 and an
empty EncodedPixels where there is no defect, so every pair is explicit; columns in the sample's order.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from steelkit import atomic
from steelkit import rle as rle_lib
from steelkit.competition import CLASSES, LONG, RLE_COLUMNS, WIDE, detect_schema, read_csv, read_table
from steelkit.errors import UserError


class SubmissionError(UserError):
    """A submission that Kaggle would reject or mis-score."""


def expected_rows(sample_path: str | os.PathLike) -> tuple[pd.DataFrame, str, list[str]]:
    """The rows a submission must have, as (ImageId, ClassId) in order; plus the schema and columns."""
    sample, schema, columns = read_table(sample_path, sample=True)
    raw = read_csv(sample_path)
    if schema == WIDE:
        keys = raw["ImageId_ClassId"].str.rsplit("_", n=1, expand=True)
        rows = pd.DataFrame({"ImageId": keys[0], "ClassId": keys[1].astype(int)})
    else:
        images = sample["ImageId"].to_numpy()
        rows = pd.DataFrame({"ImageId": np.repeat(images, len(CLASSES)),
                             "ClassId": np.tile(CLASSES, len(images))})
    return rows, schema, columns


def format_rows(predictions: pd.DataFrame, sample_path: str | os.PathLike) -> pd.DataFrame:
    """Lay the canonical ``predictions`` table out as the sample's rows.

    Sample images without a prediction get empty masks, with a warning; predictions for images the
    sample does not name are an error.
    """
    rows, schema, columns = expected_rows(sample_path)
    predicted = predictions.set_index("ImageId")
    unknown = predicted.index.difference(pd.Index(rows["ImageId"].unique()))
    if len(unknown):
        raise SubmissionError(f"{len(unknown)} predicted images are not in {sample_path}, e.g. {unknown[0]}")
    absent = pd.Index(rows["ImageId"].unique()).difference(predicted.index)
    if len(absent):
        warnings.warn(f"{len(absent)} images of {sample_path} have no prediction (e.g. {absent[0]}); "
                      "writing empty masks for them", stacklevel=2)
    predicted = predicted.reindex(rows["ImageId"].unique(), fill_value="")
    class_col = rows["ClassId"].map({c: col for c, col in zip(CLASSES, RLE_COLUMNS)})
    rles = [predicted.at[image, col] for image, col in zip(rows["ImageId"], class_col)]
    if schema == WIDE:
        out = pd.DataFrame({"ImageId_ClassId": rows["ImageId"] + "_" + rows["ClassId"].astype(str),
                            "EncodedPixels": rles})
    else:
        out = pd.DataFrame({"ImageId": rows["ImageId"], "ClassId": rows["ClassId"], "EncodedPixels": rles})
    return out[columns]


def write(predictions: pd.DataFrame, sample_path: str | os.PathLike, out_path: str | os.PathLike,
          shape: tuple[int, int] = rle_lib.IMAGE_SHAPE) -> Path:
    """Write ``submission.csv`` atomically, after validating it against the sample."""
    out_path = Path(out_path)
    frame = format_rows(predictions, sample_path)
    with atomic.atomic_path(out_path) as tmp:
        frame.to_csv(tmp, index=False)
        validate(tmp, sample_path, shape)
    return out_path


def validate(submission_path: str | os.PathLike, sample_path: str | os.PathLike,
             shape: tuple[int, int] = rle_lib.IMAGE_SHAPE) -> int:
    """Check a submission against its sample; return its number of rows or raise SubmissionError.

    Every expected (image, class) row present exactly once, no other rows, the sample's columns, and
    every RLE valid inside an image of ``shape``. The message names the first bad row (CSV line number).
    """
    expected, _, columns = expected_rows(sample_path)
    if not Path(submission_path).is_file():
        raise SubmissionError(f"{submission_path}: no such file")
    frame = read_csv(submission_path)
    if list(frame.columns) != columns:
        raise SubmissionError(f"{submission_path}: columns {list(frame.columns)}, "
                              f"expected {columns} as in {sample_path}")
    keys = row_keys(frame)
    wanted = set(expected["ImageId"] + "_" + expected["ClassId"].astype(str))
    seen: set[str] = set()
    for line, (key, encoded) in enumerate(zip(keys, frame["EncodedPixels"]), start=2):
        if key in seen:
            raise SubmissionError(f"{submission_path}, line {line}: {key} appears twice")
        if key not in wanted:
            raise SubmissionError(f"{submission_path}, line {line}: {key} is not a row of {sample_path}")
        seen.add(key)
        try:
            rle_lib.parse(encoded, shape)
        except ValueError as error:
            raise SubmissionError(f"{submission_path}, line {line} ({key}): {error}") from None
    missing = [k for k in expected["ImageId"] + "_" + expected["ClassId"].astype(str) if k not in seen]
    if missing:
        raise SubmissionError(f"{submission_path}: {len(missing)} expected rows missing, first {missing[0]}")
    return len(frame)


def row_keys(frame: pd.DataFrame) -> list[str]:
    """``<image>_<class>`` of every row of a submission-like frame, in either schema."""
    if "ImageId_ClassId" in frame.columns:
        return list(frame["ImageId_ClassId"])
    return [f"{image}_{class_id}" for image, class_id in zip(frame["ImageId"], frame["ClassId"])]


def check_covers(submission_path: str | os.PathLike, truth_path: str | os.PathLike,
                 images: list[str] | None = None) -> tuple[int, list[str]]:
    """Check that a submission lists every (image, class) pair to be scored exactly once and nothing else,
    as Kaggle's scorer requires (the files may use different schemas) -> (the number of pairs, the images
    scored as defect-free because the truth does not list them).

    A truth in the wide schema lists every pair. One in the long schema (today's train.csv) lists only the
    images with defects, so it cannot say which images exist: they are ``images`` when given (an image
    folder's files), else the submission's; every image the truth names must be among them."""
    read_table(submission_path)  # schema, classes 1-4 only, no pair twice with a defect: named by row
    frame = read_csv(submission_path)
    detect_schema(frame.columns)
    expected, schema, _ = expected_rows(truth_path)
    unlisted: list[str] = []
    if schema == LONG:
        named = list(dict.fromkeys(expected["ImageId"]))
        given = images if images is not None else (key.rsplit("_", 1)[0] for key in row_keys(frame))
        scored = list(dict.fromkeys(given))
        absent = sorted(set(named) - set(scored))
        if absent:
            where = "the images given" if images is not None else submission_path
            raise SubmissionError(f"{len(absent)} images of {truth_path} are not in {where}, e.g. {absent[0]}")
        unlisted = sorted(set(scored) - set(named))
        expected = pd.DataFrame({"ImageId": np.repeat(scored, len(CLASSES)), "ClassId": np.tile(CLASSES, len(scored))})
    wanted = list(expected["ImageId"] + "_" + expected["ClassId"].astype(str))
    if not wanted:
        raise SubmissionError(f"{truth_path}: no rows to score against")
    keys = row_keys(frame)
    if not keys:
        raise SubmissionError(f"{submission_path}: no rows (a header alone)")
    counts = pd.Series(keys).value_counts()
    problems = []
    if (counts > 1).any():
        problems.append(f"{int((counts > 1).sum())} pairs appear more than once, e.g. {counts[counts > 1].index[0]}")
    missing = sorted(set(wanted) - set(keys))
    if missing:
        problems.append(f"{len(missing)} of the truth's {len(wanted)} (image, class) pairs are missing, "
                        f"e.g. {missing[0]}")
    extra = sorted(set(keys) - set(wanted))
    if extra:
        images = sorted({k.rsplit("_", 1)[0] for k in extra})
        problems.append(f"{len(extra)} rows are not pairs of the truth ({len(images)} images, e.g. {extra[0]})")
    if problems:
        raise SubmissionError(f"{submission_path} does not cover {truth_path} as Kaggle requires: "
                              + "; ".join(problems))
    return len(wanted), unlisted
