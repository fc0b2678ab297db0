"""Models from recipes: a name -> builder registry, smp encoders and decoders, no downloads ever.

- classifier: an smp encoder (any smp name, or ``tu-<timm name>``) -> smp's ClassificationHead ->
  (N, 4) float32 logits, one per class;
- segmenter: an smp architecture (Unet, FPN, ...) -> (N, 4, H, W) float32 logits; H and W multiples of 32.

Weights: none (random), a local file of encoder weights (what smp would download from its hub, e.g.
ImageNet), or a steelkit checkpoint (``init_checkpoint``). ``encoder_weights`` is always None for smp.
"""

from __future__ import annotations

import os
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.base import ClassificationHead
from torch import nn

from steelkit import checkpoint
from steelkit.errors import UnknownName, UserError
from steelkit.recipe import Recipe

N_CLASSES = 4
SEGMENTERS = {"Unet": smp.Unet, "FPN": smp.FPN, "UnetPlusPlus": smp.UnetPlusPlus, "Linknet": smp.Linknet,
              "PSPNet": smp.PSPNet, "DeepLabV3Plus": smp.DeepLabV3Plus}


class Classifier(nn.Module):
    """Encoder + pooled head: (N, 3, H, W) float32 -> (N, 4) float32 logits."""

    def __init__(self, encoder: str, classes: int = N_CLASSES, pooling: str = "avg", dropout: float = 0.2):
        super().__init__()
        self.encoder = smp.encoders.get_encoder(encoder, in_channels=3, depth=5, weights=None)
        self.head = ClassificationHead(self.encoder.out_channels[-1], classes, pooling=pooling, dropout=dropout)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(images)[-1])


def build_segmenter(recipe) -> nn.Module:
    if recipe.arch not in SEGMENTERS:
        raise UnknownName(f"unknown segmenter arch {recipe.arch!r}; choose one of {', '.join(SEGMENTERS)}")
    if recipe.decoder_channels and recipe.arch not in ("Unet", "UnetPlusPlus"):
        raise UserError(f"recipe {recipe.name!r}: decoder_channels {recipe.decoder_channels} is an option of Unet and "
                        f"UnetPlusPlus, not of {recipe.arch} (set decoder_channels=)")
    extra = {"decoder_channels": recipe.decoder_channels} if recipe.decoder_channels else {}
    return SEGMENTERS[recipe.arch](encoder_name=recipe.encoder, encoder_weights=None, classes=N_CLASSES, **extra)


BUILDERS = {"classifier": lambda recipe: Classifier(recipe.encoder, pooling=recipe.head_pooling,
                                                   dropout=recipe.head_dropout),
            "segmenter": build_segmenter}


def init_head_bias(model: nn.Module, prior: float) -> None:
    """Start the last layer's bias at logit(prior), so that training does not spend its first epochs
    unlearning p = 0.5 everywhere (the focal-loss paper's prior initialisation)."""
    head = model.head if isinstance(model, Classifier) else model.segmentation_head
    last = [m for m in head.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
    nn.init.constant_(last.bias, float(torch.logit(torch.tensor(prior))))


def build_model(recipe, load_weights: bool = True) -> nn.Module:
    """The model a recipe describes; with ``load_weights``, its encoder weights or initial checkpoint."""
    model = BUILDERS[recipe.stage](recipe)
    init_head_bias(model, recipe.head_prior)
    if load_weights and recipe.init_checkpoint:
        model.load_state_dict(checkpoint.load_state(recipe.init_checkpoint)["model"])
    elif load_weights and recipe.encoder_weights:
        load_encoder_weights(model.encoder, recipe.encoder_weights)
    return model


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild a trained model from its checkpoint alone -> (model in eval mode, recipe)."""
    state = checkpoint.load_state(path)
    recipe = Recipe.from_dict(state["recipe"])
    model = build_model(recipe, load_weights=False)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), recipe


def freeze_unused(model: nn.Module, size: int = 64) -> list[str]:
    """Freeze the parameters no forward pass uses, and return their names.

    smp 0.6's EfficientNet encoders keep ``_conv_head`` and ``_bn1`` registered but never call them, and
    DistributedDataParallel stops on parameters that get no gradient. Freezing them (rather than deleting
    them) keeps ImageNet weight files loading without unexpected keys. Found by one backward pass of a
    zero image in eval mode: no batch-norm statistics change and no random number is drawn.
    """
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    device = next(model.parameters()).device
    model(torch.zeros(1, 3, size, size, device=device)).float().sum().backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    for name, param in model.named_parameters():
        if name in unused:
            param.requires_grad_(False)
    model.train(was_training)
    return unused


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a local .safetensors, .pth or .pt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path}: no such file (weights are never downloaded; attach them)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


HEAD_PREFIXES = ("fc.", "_fc.", "classifier.", "head.", "last_linear.", "conv_head.")


def _without_model_prefix(key: str) -> str:
    return key[len("model."):] if key.startswith("model.") else key


def load_encoder_weights(encoder: nn.Module, path: str | os.PathLike) -> None:
    """Load ImageNet-style encoder weights from a local file: a staged ``<encoder>.safetensors``, a hub
    snapshot folder (``config.json`` + ``model.safetensors``, as smp and timm download it), or a .pth/.pt.
    Classification-head keys are dropped, ``module.``/``encoder.`` prefixes stripped, a timm model's keys
    prefixed to fit smp's ``tu-`` encoders. Any other mismatch raises, naming the keys."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    state = read_state_dict(path)
    for prefix in ("module.", "encoder."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    own = list(encoder.state_dict())
    if own and all(k.startswith("model.") for k in own) and not all(k.startswith("model.") for k in state):
        state = {f"model.{k}": v for k, v in state.items()}  # timm's full model -> smp's TimmUniversalEncoder
    state = {k: v for k, v in state.items() if not _without_model_prefix(k).startswith(HEAD_PREFIXES)}
    # nn.Module's own method: some smp encoders override load_state_dict and return nothing
    try:
        missing, unexpected = nn.Module.load_state_dict(encoder, state, strict=False)
    except RuntimeError as error:  # shapes that differ
        raise UserError(f"{path} does not fit encoder {type(encoder).__name__}: {error}") from None
    missing = [k for k in missing if not _without_model_prefix(k).startswith(HEAD_PREFIXES)]
    if missing or unexpected:
        raise UserError(f"{path} does not fit encoder {type(encoder).__name__}: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")


def pad_to_multiple(images: torch.Tensor, multiple: int = 32) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N, C, H, W) on the bottom and right up to multiples of ``multiple``; also (H, W)."""
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        images = nn.functional.pad(images, (0, pad_w, 0, pad_h), mode="reflect")
    return images, (height, width)
