"""Test-time augmentation as symmetric augment / de-augment pairs on batched (N, C, H, W) tensors."""

from __future__ import annotations

import torch

from steelkit.errors import UserError


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def _hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def _vflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-2)


# mode -> (augment the input, de-augment the output map); each flip is its own inverse
TRANSFORMS = {"none": (_same, _same), "hflip": (_hflip, _hflip), "vflip": (_vflip, _vflip)}


def check_modes(modes) -> tuple[str, ...]:
    unknown = [m for m in modes if m not in TRANSFORMS]
    if unknown or not modes:
        raise UserError(f"TTA modes {list(modes)}: choose from {', '.join(TRANSFORMS)}")
    return tuple(modes)


@torch.no_grad()
def predict(model, images: torch.Tensor, modes=("none", "hflip", "vflip"), spatial: bool = True) -> torch.Tensor:
    """Mean sigmoid probability over the TTA modes.

    ``spatial``: the output is a (N, 4, H, W) map that must be flipped back; otherwise (N, 4) labels,
    unchanged by flips.
    """
    total = None
    for mode in check_modes(modes):
        augment, deaugment = TRANSFORMS[mode]
        probs = model(augment(images)).float().sigmoid()
        probs = deaugment(probs) if spatial else probs
        total = probs if total is None else total + probs
    return total / len(modes)
