import pytest
import torch

from steelkit import tta


class PointwiseModel(torch.nn.Module):
    """A 1x1 convolution: flip-equivariant, so TTA must not change its output."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)


class LeftBiased(torch.nn.Module):
    """Output depends on the column: TTA must undo each flip to line the maps up again."""

    def forward(self, x):
        columns = torch.linspace(-2, 2, x.shape[-1]).expand_as(x[:, :1])
        return torch.cat([x[:, :1] + columns] * 4, dim=1)


def test_tta_is_exact_for_an_equivariant_model():
    images = torch.randn(2, 3, 16, 40)
    model = PointwiseModel()
    plain = tta.predict(model, images, ("none",))
    torch.testing.assert_close(tta.predict(model, images, ("none", "hflip", "vflip")), plain, rtol=0, atol=1e-6)


def test_each_flip_is_undone():
    images = torch.randn(1, 3, 8, 12)
    model = LeftBiased()
    expected = model(images.flip(-1)).sigmoid().flip(-1)
    torch.testing.assert_close(tta.predict(model, images, ("hflip",)), expected)
    both = (model(images).sigmoid() + model(images.flip(-2)).sigmoid().flip(-2)) / 2
    torch.testing.assert_close(tta.predict(model, images, ("none", "vflip")), both)


def test_labels_are_not_flipped_back():
    model = lambda x: x.mean(dim=(2, 3))[:, :1].repeat(1, 4)  # noqa: E731
    images = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(tta.predict(model, images, ("none", "hflip"), spatial=False),
                               model(images).sigmoid())


def test_unknown_mode():
    with pytest.raises(ValueError, match="none, hflip, vflip"):
        tta.predict(PointwiseModel(), torch.randn(1, 3, 4, 4), ("rot90",))
