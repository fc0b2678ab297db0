"""Losses by name: BCE with per-class pos_weight, and weighted BCE + Dice (smp.losses)."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.losses import DiceLoss
from torch import nn

from steelkit.errors import UserError


class BCEDice(nn.Module):
    """``bce_weight`` * BCE(pos_weight) + ``dice_weight`` * multilabel soft Dice, on (N, 4, H, W) logits."""

    def __init__(self, pos_weight: torch.Tensor | None, bce_weight: float = 0.75, dice_weight: float = 0.25):
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.dice = DiceLoss(mode="multilabel", from_logits=True)
        self.bce_weight, self.dice_weight = bce_weight, dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.bce_weight * self.bce(logits, target) + self.dice_weight * self.dice(logits, target)


def build_loss(recipe) -> nn.Module:
    """The recipe's loss. pos_weight is per class: shaped (4,) for classifier logits (N, 4) and
    (4, 1, 1) for segmenter logits (N, 4, H, W)."""
    pos_weight = None
    if recipe.pos_weight:
        pos_weight = torch.tensor(recipe.pos_weight, dtype=torch.float32)
        if recipe.stage == "segmenter":
            pos_weight = pos_weight.view(-1, 1, 1)
    if recipe.loss == "bce":
        return nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    if recipe.stage != "segmenter":
        raise UserError(f"recipe {recipe.name!r}: loss 'bce_dice' is for segmenters")
    return BCEDice(pos_weight, recipe.bce_weight, recipe.dice_weight)
