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


class Positional(torch.nn.Module):
    """Four different maps, each tied to its place in the image (row and column ramps, weighted differently
    per class, plus the input): flipping the input or the output moves it, so only the right de-augmentation
    of every mode lines the maps up with the plain prediction's layout."""

    def forward(self, x):
        height, width = x.shape[-2:]
        rows = torch.linspace(-2, 2, height).view(1, 1, height, 1)
        columns = torch.linspace(-1, 3, width).view(1, 1, 1, width)
        return torch.cat([x[:, :1] * (k + 1) + rows * (k - 1.5) + columns * (2 - k) for k in range(4)], dim=1)


def by_hand(model, images):
    """TTA written out without tta.py: each flip undone on the output by the flip that made it."""
    maps = [model(images).sigmoid(), model(images.flip(3)).sigmoid().flip(3), model(images.flip(2)).sigmoid().flip(2)]
    return sum(maps) / 3


def test_every_mode_is_undone_on_maps_that_differ_per_class_and_place():
    images = torch.randn(2, 3, 8, 12)
    model = Positional()
    outputs = model(images)
    assert not torch.allclose(outputs[:, 0], outputs[:, 1]) and not torch.allclose(outputs, outputs.flip(3))
    torch.testing.assert_close(tta.predict(model, images, ("none", "hflip", "vflip")), by_hand(model, images))


@pytest.mark.parametrize("broken", [("hflip", "none"), ("vflip", "none"), ("hflip", "vflip"), ("vflip", "hflip")])
def test_a_broken_deaugmentation_is_caught(monkeypatch, broken):
    """The test above fails when any one mode is undone wrongly."""
    mode, wrong = broken
    monkeypatch.setitem(tta.TRANSFORMS, mode, (tta.TRANSFORMS[mode][0], tta.TRANSFORMS[wrong][1]))
    images = torch.randn(2, 3, 8, 12)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(tta.predict(Positional(), images, ("none", "hflip", "vflip")),
                                   by_hand(Positional(), images))


def test_labels_are_not_flipped_back():
    model = lambda x: x.mean(dim=(2, 3))[:, :1].repeat(1, 4)  # noqa: E731
    images = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(tta.predict(model, images, ("none", "hflip"), spatial=False),
                               model(images).sigmoid())


def test_unknown_mode():
    with pytest.raises(ValueError, match="none, hflip, vflip"):
        tta.predict(PointwiseModel(), torch.randn(1, 3, 4, 4), ("rot90",))
