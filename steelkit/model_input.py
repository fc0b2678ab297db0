"""The model's input, made on the device: batches travel as uint8 (N, H, W, C) images (C = 1 for the
competition's grayscale images, 3 for colour) and become (N, 3, H, W) float32 ImageNet-normalised there,
channels replicated and, where asked, channels_last (an NHWC batch permuted to NCHW is channels_last already).
The targets travel packed (``steelkit.masks``).

The numbers are albumentations' ``Normalize`` of the same pixels (``(x - 255 mean) / (255 std)``), within
float rounding: the CPU pipeline that used to make them.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_constants: dict = {}


def _scaled(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """255 x mean and 255 x std as (1, 3, 1, 1) float32 on ``device``, made once per device."""
    if device not in _constants:
        _constants[device] = tuple(torch.tensor(v, dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255
                                   for v in (IMAGENET_MEAN, IMAGENET_STD))
    return _constants[device]


def model_input(images: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, H, W, C) with C in (1, 3), on any device -> float32 (N, 3, H, W) normalised on ``device``."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images {tuple(images.shape)} {images.dtype}: expected uint8 (N, H, W, 1 or 3)")
    pixels = images.to(device, non_blocking=True).permute(0, 3, 1, 2)
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    mean, std = _scaled(device)
    out = (pixels.float() - mean) / std
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return out.contiguous(memory_format=fmt)
