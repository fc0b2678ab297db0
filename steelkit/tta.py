"""Test-time augmentation as symmetric augment / de-augment pairs on batched (N, C, H, W) tensors."""

from __future__ import annotations

import torch

# each flip is its own inverse
TRANSFORMS = {
    "none": lambda x: x,
    "hflip": lambda x: x.flip(-1),
    "vflip": lambda x: x.flip(-2),
}


def check_modes(modes) -> tuple[str, ...]:
    unknown = [m for m in modes if m not in TRANSFORMS]
    if unknown or not modes:
        raise ValueError(f"TTA modes {list(modes)}: choose from {', '.join(TRANSFORMS)}")
    return tuple(modes)


@torch.no_grad()
def predict(model, images: torch.Tensor, modes=("none", "hflip", "vflip"), spatial: bool = True) -> torch.Tensor:
    """Mean sigmoid probability over the TTA modes.

    ``spatial``: the output is a (N, 4, H, W) map that must be flipped back; otherwise (N, 4) labels,
    unchanged by flips.
    """
    total = None
    for mode in check_modes(modes):
        flip = TRANSFORMS[mode]
        probs = model(flip(images)).float().sigmoid()
        probs = flip(probs) if spatial else probs
        total = probs if total is None else total + probs
    return total / len(modes)
