"""External TorchScript members: the same predictions as the checkpoint they were exported from, whatever
their input normalisation, channel count or output kind."""

import pytest
import torch
from torch import nn

from steelkit import ensemble, external, models
from steelkit.model_input import IMAGENET_MEAN, IMAGENET_STD
from steelkit.predict import InferenceConfig, predict


class RawInput(nn.Module):
    """An exported model that takes the pixels as the member's sidecar says (raw / 255, one channel if
    asked) and optionally outputs probabilities, wrapping a steelkit model."""

    def __init__(self, model: nn.Module, channels: int, probabilities: bool):
        super().__init__()
        self.model, self.channels, self.probabilities = model, channels, probabilities
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, -1, 1, 1))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        raw = raw.expand(-1, 3, -1, -1) if self.channels == 1 else raw
        out = self.model((raw - self.mean) / self.std)
        return out.sigmoid() if self.probabilities else out


@pytest.mark.parametrize("stage, channels, output", [("segmenter", 1, "probabilities"), ("classifier", 3, "logits")])
def test_a_torchscript_member_predicts_as_its_original(trained, tmp_path, stage, channels, output):
    name = "seg-tiny" if stage == "segmenter" else "cls-tiny"
    model, _ = models.load_model(trained / name)
    grey = torch.rand(2, 1, 64, 320).expand(-1, 3, -1, -1)  # grayscale content in three channels, as the data
    images = (grey - torch.tensor(IMAGENET_MEAN).view(1, -1, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, -1, 1, 1)
    path = external.export(RawInput(model, channels, output == "probabilities"), stage, tmp_path / "m.pt",
                           torch.rand(1, channels, 64, 320), output=output, channels=channels,
                           mean=[0.0] * channels, std=[1.0] * channels, max_pixel_value=255.0)
    member, found = external.load_member(path)
    assert found == stage and external.is_member(path)
    with torch.no_grad():
        torch.testing.assert_close(member(images).sigmoid(), model(images).sigmoid(), rtol=1e-4, atol=1e-5)


def test_the_submission_takes_members_from_an_attached_folder_like_checkpoints(mini, trained, tmp_path):
    model, _ = models.load_model(trained / "seg-tiny")
    folder = tmp_path / "mlcomp"
    external.export(RawInput(model, 3, False), "segmenter", folder / "unet.pt", torch.rand(1, 3, 64, 320),
                    output="logits", channels=3, mean=[0.0] * 3, std=[1.0] * 3, max_pixel_value=255.0)
    found = ensemble.split_by_stage(ensemble.find_checkpoints([folder, trained]))
    assert folder / "unet.pt" in found["segmenter"] and len(found["classifier"]) == 1
    config = InferenceConfig(num_workers=0, tta=("none",))
    ours = predict(mini, found["classifier"], [trained / "seg-tiny" / "best.pt"], tmp_path / "a.csv", config,
                   device="cpu")
    theirs = predict(mini, found["classifier"], [folder / "unet.pt"], tmp_path / "b.csv", config, device="cpu")
    assert ours["table"].equals(theirs["table"])


def test_a_bad_sidecar_is_named(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"")
    (tmp_path / "m.json").write_text('{"format": "torchscript", "stage": "detector"}')
    with pytest.raises(ValueError, match=r"m.json: stage 'detector'"):
        external.read_sidecar(tmp_path / "m.pt")


def test_a_member_of_non_finite_weights_is_refused(trained, tmp_path):
    model, _ = models.load_model(trained / "cls-tiny")
    with torch.no_grad():
        next(p for p in model.parameters() if p.is_floating_point()).fill_(float("nan"))  # a diverged model
    path = external.export(RawInput(model, 3, False), "classifier", tmp_path / "m.pt", torch.rand(1, 3, 64, 320),
                           output="logits", channels=3, mean=[0.0] * 3, std=[1.0] * 3, max_pixel_value=255.0)
    with pytest.raises(ValueError, match=r"m.pt: 1 of \d+ weight tensors are not finite"):
        external.load_member(path)
