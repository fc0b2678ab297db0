"""Masks as they travel: the four classes of an image packed into one (H, W) uint8, bit k - 1 for class k (a
quarter of the bytes of a (4, H, W) mask), made from RLE strings in the DataLoader's workers (``pack``), opened
into (N, 4, H, W) targets on the device (``unpack``)."""

from __future__ import annotations

import numpy as np
import torch

from steelkit import rle as rle_lib


def pack(rles, shape: tuple[int, int], top: int = 0, left: int = 0, height: int | None = None,
                width: int | None = None, flip: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The four RLE strings' window at (top, left) (default: the whole image) as one (h, w) uint8 mask, bit
    k - 1 set for class k (a quarter of the bytes of a (4, h, w) mask to carry to the device, where
    ``unpack`` opens it), and the (4,) uint8 classes whose runs reach the window's
    columns (on a window of full height: the classes present). Empty classes cost no decode."""
    height, width = height or shape[0], width or shape[1]
    mask = np.zeros((height, width), dtype=np.uint8)
    touched = np.zeros(4, dtype=np.uint8)
    layer = None
    for k, text in enumerate(rles):
        first = not touched.any()
        target = mask if first else layer if layer is not None else np.empty_like(mask)
        if rle_lib.decode_window(text, shape, top, left, height, width, out=target, flip=flip) is None:
            continue
        touched[k] = 1
        if first:  # decoded straight into the mask
            np.left_shift(mask, k, out=mask)
        else:
            layer = target
            np.bitwise_or(mask, np.left_shift(layer, k, out=layer), out=mask)
    return mask, touched


def labels(mask: np.ndarray) -> np.ndarray:
    """The (4,) uint8 presence of each class in a packed mask."""
    bits = int(np.bitwise_or.reduce(mask, axis=None)) if mask.size else 0
    return np.array([(bits >> k) & 1 for k in range(4)], dtype=np.uint8)


def unpack(packed: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """(N, H, W) uint8 masks with bit k - 1 for class k, on any device -> (N, 4, H, W) uint8 in {0, 1} on
    ``device`` (default: where they are)."""
    packed = packed.to(device, non_blocking=True) if device is not None else packed
    bits = torch.arange(4, dtype=torch.uint8, device=packed.device).view(1, 4, 1, 1)
    return (packed.unsqueeze(1) >> bits) & 1
