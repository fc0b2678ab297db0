"""External ensemble members: TorchScript models that steelkit did not train (the seed's three public mlcomp
Unets were such), each described by a JSON sidecar beside it (``<name>.pt`` + ``<name>.json``):

    {"format": "torchscript", "stage": "segmenter" | "classifier", "output": "logits" | "probabilities",
     "channels": 3 | 1, "mean": [...], "std": [...], "max_pixel_value": 255}

A member gets the same images as steelkit's own models (``steelkit.model_input``: ImageNet
normalisation); ``Member`` turns them into the member's own input (its normalisation and channel count)
and its output into logits, so that TTA and averaging treat it like any other model. Loading runs
``torch.jit.load``: attach only TorchScript files you trust.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from steelkit import checkpoint
from steelkit.errors import UserError
from steelkit.model_input import IMAGENET_MEAN, IMAGENET_STD

STAGES, OUTPUTS = ("classifier", "segmenter"), ("logits", "probabilities")


def sidecar(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def is_member(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript file with a steelkit sidecar."""
    side = sidecar(path)
    if Path(path).suffix != ".pt" or not side.is_file():
        return False
    try:
        return json.loads(side.read_text()).get("format") == "torchscript"
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def read_sidecar(path: str | os.PathLike) -> dict:
    """The member's description, checked; a bad sidecar raises naming the file and the field."""
    side = sidecar(path)
    try:
        spec = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"{side}: not a readable sidecar ({error})") from None
    spec = {"channels": 3, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "max_pixel_value": 255.0,
            "output": "logits", **spec}
    checks = [(spec.get("stage") in STAGES, f"stage {spec.get('stage')!r}: expected one of {STAGES}"),
              (spec["output"] in OUTPUTS, f"output {spec['output']!r}: expected one of {OUTPUTS}"),
              (spec["channels"] in (1, 3), f"channels {spec['channels']!r}: expected 1 or 3"),
              (len(spec["mean"]) == len(spec["std"]) == spec["channels"],
               f"mean {spec['mean']} and std {spec['std']}: one value per channel ({spec['channels']})")]
    for ok, message in checks:
        if not ok:
            raise UserError(f"{side}: {message}")
    return spec


class Member(nn.Module):
    """A TorchScript model behind steelkit's interface: ImageNet-normalised (N, 3, H, W) float32 in,
    logits out ((N, 4) or (N, 4, H, W))."""

    def __init__(self, scripted: nn.Module, spec: dict):
        super().__init__()
        self.scripted, self.probabilities = scripted, spec["output"] == "probabilities"
        self.channels = spec["channels"]
        shape = (1, -1, 1, 1)
        self.register_buffer("our_mean", torch.tensor(IMAGENET_MEAN).view(shape))
        self.register_buffer("our_std", torch.tensor(IMAGENET_STD).view(shape))
        self.register_buffer("mean", torch.tensor(spec["mean"], dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(spec["std"], dtype=torch.float32).view(shape))
        self.scale = 255.0 / float(spec["max_pixel_value"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raw = images * self.our_std + self.our_mean  # pixel / 255, as read
        raw = raw[:, : self.channels]  # grayscale content: the channels are identical
        out = self.scripted((raw * self.scale - self.mean) / self.std).float()
        return torch.logit(out.clamp(1e-6, 1 - 1e-6)) if self.probabilities else out


def load_member(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, str]:
    """(the member in eval mode on ``device``, its stage)."""
    spec = read_sidecar(path)
    try:
        with warnings.catch_warnings():  # torch 2.14 calls TorchScript deprecated; the seed's members are TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as error:
        raise UserError(f"{path}: not a loadable TorchScript model ({str(error).splitlines()[0]})") from None
    checkpoint.check_finite(dict(scripted.state_dict()), path)
    return Member(scripted, spec).to(device).eval(), spec["stage"]


def export(model: nn.Module, stage: str, path: str | os.PathLike, example: torch.Tensor, **spec) -> Path:
    """Trace ``model`` on ``example`` into ``path`` with its sidecar (``spec``: output, channels, mean,
    std, max_pixel_value) -> the TorchScript file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.trace(model.eval(), example).save(str(path))
    sidecar(path).write_text(json.dumps({"format": "torchscript", "stage": stage, **spec}, indent=2) + "\n")
    read_sidecar(path)
    return path
