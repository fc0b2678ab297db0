import pytest
import torch

from steelkit import losses, models
from steelkit.recipe import Recipe, override, preset

TINY_ENCODER = "tu-mobilenetv3_small_050"


@pytest.mark.parametrize("recipe", [
    Recipe(stage="classifier", arch="Classifier", encoder=TINY_ENCODER, pos_weight=()),
    Recipe(stage="classifier", arch="Classifier", encoder=TINY_ENCODER, head_pooling="max", pos_weight=()),
    Recipe(arch="Unet", encoder=TINY_ENCODER, decoder_channels=(32, 16, 16, 8, 8)),
    Recipe(arch="FPN", encoder=TINY_ENCODER),
])
def test_forward_backward_shapes(recipe):
    model = models.build_model(recipe)
    images = torch.randn(2, 3, 64, 128)
    logits = model(images)
    assert logits.shape == ((2, 4) if recipe.stage == "classifier" else (2, 4, 64, 128))
    target = torch.zeros_like(logits)
    loss = losses.build_loss(recipe)(logits, target)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # the prior initialisation: outputs start near the prior, not at p = 0.5
    assert float(logits.detach().sigmoid().mean()) < 0.3


def test_unknown_architecture_lists_the_valid_ones():
    with pytest.raises(KeyError, match="Unet, FPN"):
        models.build_model(Recipe(arch="Mask-RCNN", encoder=TINY_ENCODER))


def test_presets_build_the_seed_models_without_downloading():
    for name in ("cls-effb1", "cls-r34", "seg-unet-effb3", "seg-fpn-effb3"):
        model = models.build_model(preset(name))
        assert sum(p.numel() for p in model.parameters()) > 1_000_000


def test_encoder_weights_come_from_a_local_file(tmp_path):
    recipe = Recipe(stage="classifier", arch="Classifier", encoder="resnet18", pos_weight=())
    source = models.build_model(recipe)
    state = {f"module.{k}": v for k, v in source.encoder.state_dict().items()}
    state["module.fc.weight"] = torch.zeros(1000, 512)  # an ImageNet head, dropped on load
    torch.save(state, tmp_path / "resnet18.pth")
    loaded = models.build_model(override(recipe, [f"encoder_weights={tmp_path / 'resnet18.pth'}"]))
    for key, value in source.encoder.state_dict().items():
        torch.testing.assert_close(loaded.encoder.state_dict()[key], value)

    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="does not fit"):
        models.build_model(override(recipe, [f"encoder_weights={tmp_path / 'wrong.pth'}"]))
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        models.build_model(override(recipe, ["encoder_weights=/nowhere/weights.pth"]))


def test_pad_to_multiple_reflects_and_reports_the_size():
    images = torch.arange(2 * 3 * 40 * 70, dtype=torch.float32).reshape(2, 3, 40, 70)
    padded, size = models.pad_to_multiple(images)
    assert padded.shape == (2, 3, 64, 96) and size == (40, 70)
    torch.testing.assert_close(padded[..., :40, :70], images)


def test_losses_by_name():
    seg = Recipe(loss="bce_dice")
    loss = losses.build_loss(seg)
    logits, target = torch.randn(2, 4, 8, 8), (torch.rand(2, 4, 8, 8) > 0.7).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor([2.0, 2.0, 1.0, 1.5]).view(-1, 1, 1))
    from segmentation_models_pytorch.losses import DiceLoss

    dice = DiceLoss(mode="multilabel", from_logits=True)(logits, target)
    torch.testing.assert_close(loss(logits, target), 0.75 * bce + 0.25 * dice)
    with pytest.raises(ValueError, match="for segmenters"):
        losses.build_loss(Recipe(stage="classifier", arch="Classifier", loss="bce_dice"))
