"""The ensembles inference runs: checkpoints found on disk and sorted by stage, and the models of one stage
spread over the devices present.
"""

from __future__ import annotations

from pathlib import Path

import torch

from steelkit import checkpoint, external, tta
from steelkit.errors import UserError
from steelkit.model_input import model_input
from steelkit.models import load_model, pad_to_multiple
from steelkit.recipe import Recipe


def find_checkpoints(folders) -> list[Path]:
    """Every best.pt and every external TorchScript member (``steelkit.external``) in the given folders
    (a folder may hold one training output or several)."""
    found: list[Path] = []
    for folder in map(Path, folders):
        if folder.is_file():
            found.append(folder)
            continue
        members = sorted(p.with_suffix(".pt") for p in folder.rglob("*.json")
                         if external.is_member(p.with_suffix(".pt")))
        hits = sorted(folder.rglob(checkpoint.BEST)) + members
        if not hits:
            raise FileNotFoundError(f"no {checkpoint.BEST} (nor TorchScript member with a sidecar) under {folder}")
        found += hits
    return found


def split_by_stage(paths) -> dict[str, list[Path]]:
    """Checkpoints sorted into classifiers and segmenters by the recipe.json beside each (else inside it);
    external members by their sidecar."""
    found: dict[str, list[Path]] = {"classifier": [], "segmenter": []}
    for path in map(Path, paths):
        if external.is_member(path):
            found[external.read_sidecar(path)["stage"]].append(path)
            continue
        beside = path.parent / "recipe.json"
        recipe = Recipe.load(beside) if beside.is_file() else Recipe.from_dict(checkpoint.load_state(path)["recipe"])
        found[recipe.stage].append(path)
    return found


def resolve_devices(device: str | list | None = None) -> list[torch.device]:
    """The devices to predict on: as given ("cpu", "cuda:1", "cuda:0,cuda:1" or a list), else every CUDA
    device (Kaggle's two T4s), else the CPU."""
    if device is None:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [torch.device(f"cuda:{k}") for k in range(count)] or [torch.device("cpu")]
    names = device.split(",") if isinstance(device, str) else list(device)
    return [torch.device(str(name).strip()) for name in names]


class Ensemble:
    """The models of one stage, loaded from checkpoints (each carries its recipe) or TorchScript members
    (``steelkit.external``), spread over
    ``devices``: model i lives on device i mod the number of devices, every batch goes to all of them,
    and the outputs are gathered on the first device and averaged in model order (so one device or
    several give the same numbers)."""

    def __init__(self, checkpoints: list[Path], devices: list[torch.device], stage: str):
        self.paths, self.spatial, self.devices = list(checkpoints), stage == "segmenter", list(devices)
        self.models = []
        for number, path in enumerate(self.paths):
            device = self.devices[number % len(self.devices)]
            if external.is_member(path):  # a TorchScript model with its sidecar
                model, found = external.load_member(path, device)
            else:
                model, recipe = load_model(path, device)
                found = recipe.stage
            if found != stage:
                raise UserError(f"{path} is a {found}, given as a {stage}")
            if device.type == "cuda":  # as in training: tensor cores want NHWC
                model = model.to(memory_format=torch.channels_last)
            self.models.append((model, device))

    def __len__(self) -> int:
        return len(self.models)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, modes, amp: bool) -> torch.Tensor:
        """uint8 (N, H, W, C) images on any device -> mean probabilities over models and TTA, on the first
        device: (N, 4, H, W) for segmenters, (N, 4) for classifiers. Each device gets the uint8 batch and
        makes the models' input itself (``model_input``), padded to a multiple of 32."""
        copies = {}
        for device in {d for _, d in self.models}:
            padded, (height, width) = pad_to_multiple(model_input(images, device))
            copies[device] = padded.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else padded
        outputs = []  # every model launched before any result is gathered: the devices work side by side
        for model, device in self.models:
            with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                outputs.append(tta.predict(model, copies[device], modes, spatial=self.spatial))
        first = self.devices[0]
        mean = sum(output.to(first) for output in outputs) / len(outputs)
        return mean[..., :height, :width] if self.spatial else mean

    def names(self) -> list[str]:
        return [f"{p.parent.name}/{p.name}" for p in self.paths]
