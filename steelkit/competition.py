"""Reading the competition's files: label tables in either schema, and images.

The canonical table has one row per image, in the order the file first names them, with columns
``ImageId`` and ``rle_1`` .. ``rle_4`` (RLE strings, ``""`` where the class is absent). Both schemas
the competition used read into it:

- wide: ``ImageId_ClassId,EncodedPixels``, four rows per image (``0002cc93b.jpg_1``);
- long: ``ImageId,ClassId,EncodedPixels`` in any column order, one row per (image, class) with a
  defect; today's ``sample_submission.csv`` is long with ``ClassId`` 0 and a placeholder RLE on one
  row per image, which names the image and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from steelkit import rle as rle_lib
from steelkit.errors import UserError

CLASSES = (1, 2, 3, 4)
RLE_COLUMNS = tuple(f"rle_{c}" for c in CLASSES)
WIDE, LONG = "wide", "long"
WIDE_COLUMNS = ("ImageId_ClassId", "EncodedPixels")
LONG_COLUMNS = ("ImageId", "ClassId", "EncodedPixels")


def detect_schema(columns) -> str:
    """Return WIDE or LONG for a header, or raise naming what was expected."""
    names = set(columns)
    if names == set(WIDE_COLUMNS):
        return WIDE
    if names == set(LONG_COLUMNS):
        return LONG
    raise UserError(f"unknown columns {list(columns)}; expected {','.join(WIDE_COLUMNS)} "
                    f"or {','.join(LONG_COLUMNS)}")


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A competition CSV as strings; a missing, empty or unparsable file raises naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file (expected a header and rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a readable CSV ({str(error).strip()})") from None


def read_table(path: str | os.PathLike, sample: bool = False) -> tuple[pd.DataFrame, str, list[str]]:
    """Read a label, sample or submission CSV into the canonical table; also its schema and columns.

    ClassId 0 on a row with a defect is valid only in today's sample submission (``sample=True``, where the
    RLE is a placeholder): in labels or a submission it would silently erase that defect, so it is refused
    there, naming file and row."""
    path = Path(path)
    frame = read_csv(path)
    schema = detect_schema(frame.columns)
    if schema == WIDE:
        image_ids, class_ids = _split_wide_keys(frame, path)
    else:
        image_ids = frame["ImageId"].to_numpy(dtype=object)
        class_ids = _parse_class_ids(frame["ClassId"], path, allowed=(0, *CLASSES))
        erased = (class_ids == 0) & (frame["EncodedPixels"].str.strip() != "").to_numpy()
        if erased.any() and not sample:
            row = int(np.argmax(erased))
            raise UserError(f"{path}, row {row + 2}: image {image_ids[row]} has ClassId 0 on a row with a defect "
                            f"(EncodedPixels {frame['EncodedPixels'].iloc[row][:30]!r}); classes are 1-4, and 0 "
                            "is valid only in today's sample_submission.csv")
    rles = frame["EncodedPixels"].to_numpy(dtype=object)
    return _canonical(path, image_ids, class_ids, rles), schema, list(frame.columns)


def _split_wide_keys(frame: pd.DataFrame, path: Path) -> tuple[np.ndarray, np.ndarray]:
    parts = frame["ImageId_ClassId"].str.rsplit("_", n=1, expand=True)
    if parts.shape[1] != 2 or parts[1].isna().any():
        row = int(np.argmax(parts[1].isna().to_numpy())) if parts.shape[1] == 2 else 0
        raise UserError(f"{path}, row {row + 2}: ImageId_ClassId {frame['ImageId_ClassId'].iloc[row]!r} "
                        "is not <image>_<class>")
    return parts[0].to_numpy(dtype=object), _parse_class_ids(parts[1], path, allowed=CLASSES)


def _parse_class_ids(values: pd.Series, path: Path, allowed: tuple[int, ...]) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | ~numbers.isin(allowed)
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise UserError(f"{path}, row {row + 2}: class {values.iloc[row]!r} is not one of {list(allowed)}")
    return numbers.to_numpy(dtype=np.int64)


def _canonical(path: Path, image_ids: np.ndarray, class_ids: np.ndarray, rles: np.ndarray) -> pd.DataFrame:
    order = pd.unique(image_ids)
    table = pd.DataFrame({"ImageId": order, **{col: "" for col in RLE_COLUMNS}})
    position = pd.Series(np.arange(len(order)), index=order)
    defect = class_ids > 0
    keys = pd.Series(list(zip(image_ids[defect], class_ids[defect])))
    duplicated = keys.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(defect)[int(np.argmax(duplicated.to_numpy()))])
        raise UserError(f"{path}, row {row + 2}: image {image_ids[row]} class {class_ids[row]} appears twice")
    rows = position[image_ids[defect]].to_numpy()
    for class_id in CLASSES:
        chosen = class_ids[defect] == class_id
        table.iloc[rows[chosen], table.columns.get_loc(f"rle_{class_id}")] = [
            str(r).strip() for r in rles[defect][chosen]]
    return table


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The images of a folder (by their suffix), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of images")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_labels(path: str | os.PathLike, image_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read ``train.csv`` (either schema) into the canonical table.

    The long schema lists only images with a defect; with ``image_dir`` the images there that the file
    does not name are added as defect-free rows, in sorted order after the named ones.
    """
    table, _, _ = read_table(path)
    if image_dir is not None:
        on_disk = [p.name for p in image_files(image_dir)]
        missing = sorted(set(on_disk) - set(table["ImageId"]))
        if missing:
            extra = pd.DataFrame({"ImageId": missing, **{col: "" for col in RLE_COLUMNS}})
            table = pd.concat([table, extra], ignore_index=True)
    return table


def presence(table: pd.DataFrame) -> np.ndarray:
    """(N, 4) bool: which classes each image of the canonical table has."""
    return np.stack([table[col].to_numpy(dtype=str) != "" for col in RLE_COLUMNS], axis=1)


def decode_row(rles, shape: tuple[int, int]) -> np.ndarray:
    """The four RLE strings of one image as a (4, H, W) uint8 mask."""
    return np.stack([rle_lib.decode(r, shape) for r in rles])


def refuse_images(problems: list[str], total: int) -> None:
    """Raise ValueError listing (up to ten of) the ``problems`` found among ``total`` training images."""
    if problems:
        listed = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise UserError(f"{len(problems)} of {total} training images cannot be used:\n  {listed}{more}")


def decode_image(path: str | os.PathLike, grayscale: bool = False) -> np.ndarray:
    """Read an image as uint8 (H, W, 1) luma (``grayscale``: cheaper, and exact on the competition's images
    where ``grayscale_is_exact`` says so) or (H, W, 3) RGB; a missing or unreadable file raises naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path}: no such file")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise UserError(f"image {path}: not a readable image ({data.size} bytes)")
    return image[:, :, None] if grayscale else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike, grayscale: bool = False) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB (``grayscale``: the luma decode replicated), for pictures and
    checks; the model's pipeline keeps ``decode_image``'s single channel."""
    image = decode_image(path, grayscale)
    return np.repeat(image, 3, axis=2) if grayscale else image


def grayscale_is_exact(paths, sample: int = 8) -> bool:
    """Whether the grayscale decode gives exactly the colour decode's pixels on these images: checked on
    up to ``sample`` readable ones (three identical channels, equal to the luma decode); any colour at
    all, or nothing readable, means colour decoding."""
    checked = 0
    for path in paths:
        try:
            colour, grey = read_image(path), read_image(path, grayscale=True)
        except (OSError, ValueError):
            continue
        if not np.array_equal(colour, grey):
            return False
        checked += 1
        if checked >= sample:
            break
    return checked > 0


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(H, W) from an image file's header alone (no decoding); None when the header cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, SyntaxError):
        return None
    return height, width


def agreed_shape(paths, what: str = "images") -> tuple[int, int]:
    """The (H, W) of the images a run uses: the size most of them have, read off their headers.

    One stray image of another size must not decide the size for all the others (the first file in sorted
    order once did): the majority decides, and the odd ones are then named wherever they are used
    (training refuses them by name, prediction writes empty rows for them with a warning). A tie between
    two sizes is no majority: it raises, naming examples of both. Unreadable headers are left to the
    reader that uses the file."""
    sizes: dict[tuple[int, int], list[str]] = {}
    for path in map(Path, paths):
        size = image_size(path)
        if size is not None:
            sizes.setdefault(size, []).append(path.name)
    if not sizes:
        raise FileNotFoundError(f"no readable {what} to read the image size from")
    ranked = sorted(sizes.items(), key=lambda item: -len(item[1]))
    if len(ranked) > 1 and len(ranked[0][1]) == len(ranked[1][1]):
        listed = "; ".join(f"{len(names)} of {h}x{w} (e.g. {names[0]})" for (h, w), names in ranked[:3])
        raise UserError(f"the {what} disagree on their size with no majority: {listed}")
    return ranked[0][0]


def image_shape(folder: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of the images in a folder or a competition folder (its test, then train images): the size
    most of them have (``agreed_shape``)."""
    folder = Path(folder)
    for sub in (folder, folder / "test_images", folder / "train_images"):
        paths = image_files(sub) if sub.is_dir() else []
        if paths:
            return agreed_shape(paths, f"images in {sub}")
    raise FileNotFoundError(f"{folder}: no readable images to read the image size from")
