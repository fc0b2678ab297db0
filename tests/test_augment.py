import albumentations as A
import numpy as np
import pytest
import torch

from steelkit import augment, masks, rle
from steelkit.datasets import Sample, SteelDataset
from steelkit.masks import unpack as unpack_masks
from steelkit.model_input import IMAGENET_MEAN, IMAGENET_STD, model_input
from steelkit.recipe import preset

SHAPE = (32, 48)


def unpacked(mask: np.ndarray) -> np.ndarray:
    return unpack_masks(torch.from_numpy(mask[None]))[0].numpy()


def _image_and_rles(channels: int = 1):
    """A textured (H, W, channels) image and four defect regions: class 1 (24 px), class 3 (150 px and 4 px),
    class 4 (18 px)."""
    image = np.random.default_rng(0).integers(30, 220, (*SHAPE, channels), dtype=np.uint8)
    mask = np.zeros((4, *SHAPE), dtype=np.uint8)
    mask[0, 2:6, 3:9] = 1
    mask[2, 20:30, 30:45] = 1
    mask[2, 10:12, 20:22] = 1
    mask[3, 12:15, 24:30] = 1
    return image, tuple(rle.encode(m) for m in mask), mask


def _reference(image, mask, draw, crop, region=None):
    """The same draw made by albumentations' own transforms on the whole image, as the seed's pipeline did:
    blackout on the full image, then crop, flips, brightness/contrast."""
    image, mask = image.copy(), np.moveaxis(mask, 0, -1).copy()
    if region is not None:
        image[region], mask[region] = 0, 0
    steps = [A.Crop(x_min=draw.left, y_min=draw.top, x_max=draw.left + crop[1], y_max=draw.top + crop[0])]
    steps += [A.HorizontalFlip(p=1)] if draw.hflip else []
    steps += [A.VerticalFlip(p=1)] if draw.vflip else []
    if draw.alpha != 1.0 or draw.beta != 0.0:
        contrast, brightness = draw.alpha - 1, draw.beta / 255
        steps.append(A.RandomBrightnessContrast(brightness_limit=(brightness, brightness),
                                                contrast_limit=(contrast, contrast), p=1))
    out = A.Compose(steps)(image=image, mask=mask)
    return out["image"], np.moveaxis(out["mask"], -1, 0)


@pytest.mark.parametrize("hflip,vflip,adjust,channels", [(False, False, False, 1), (True, False, True, 1),
                                                         (False, True, True, 1), (True, True, False, 1),
                                                         (True, True, True, 3), (True, False, False, 3)])
def test_a_crop_is_what_albumentations_makes_of_the_same_draw(hflip, vflip, adjust, channels):
    image, rles, mask = _image_and_rles(channels)
    crop = (16, 24)
    draw = augment.Draw(top=9, left=21, hflip=hflip, vflip=vflip, alpha=1.13 if adjust else 1.0,
                        beta=-17.5 if adjust else 0.0)
    out_image, packed, labels = augment.crop_item(image, rles, SHAPE, crop, draw)
    ref_image, ref_mask = _reference(image, mask, draw, crop)
    assert out_image.flags.c_contiguous and packed.flags.c_contiguous
    assert out_image.dtype == np.uint8 and out_image.shape == (*crop, channels) and packed.shape == crop
    np.testing.assert_array_equal(out_image, ref_image)
    np.testing.assert_array_equal(unpacked(packed), ref_mask)
    np.testing.assert_array_equal(labels, ref_mask.any(axis=(1, 2)))
    assert ref_mask[2].any() and ref_mask[3].any(), "the crop holds two classes: the test compares something"


def test_the_blackout_chooses_among_the_whole_images_regions_and_clears_the_crops_part():
    image, rles, mask = _image_and_rles()
    regions = {24: mask[0] == 1, 150: (mask[2] == 1) & (np.arange(SHAPE[0])[:, None] >= 20),
               4: (mask[2] == 1) & (np.arange(SHAPE[0])[:, None] < 20), 18: mask[3] == 1}
    seen = set()
    for pick in np.linspace(0, 0.999, 12):
        labels, label, _ = augment.blackout_region(rles, SHAPE, pick)
        area = int((labels == label).sum())
        seen.add(area)
        draw = augment.Draw(top=4, left=8, blackout=True, pick=pick, alpha=0.9, beta=12.0)
        out_image, packed, labels = augment.crop_item(image, rles, SHAPE, (24, 40), draw)
        ref_image, ref_mask = _reference(image, mask, draw, (24, 40), regions[area])
        np.testing.assert_array_equal(out_image, ref_image)
        np.testing.assert_array_equal(unpacked(packed), ref_mask)
        np.testing.assert_array_equal(labels, ref_mask.any(axis=(1, 2)))
    assert seen == {4, 18, 24, 150}, "every region of every class can be drawn, wherever the crop is"
    assert augment.blackout_region(("", "", "", ""), SHAPE, 0.5) is None


def test_draws_follow_the_recipes_probabilities_and_cover_every_crop_position():
    aug = augment.Augment(crop=(256, 512), blackout=0.5, hflip=0.5, vflip=0.3, brightness_contrast=0.5)
    draws = [augment.draw(aug, (256, 1600), np.random.default_rng((0, 0, i))) for i in range(4000)]
    lefts = np.array([d.left for d in draws])
    assert lefts.min() == 0 and lefts.max() == 1600 - 512 and abs(lefts.mean() - 544) < 25
    assert {d.top for d in draws} == {0}
    for name, p in (("hflip", 0.5), ("vflip", 0.3), ("blackout", 0.5)):
        rate = np.mean([getattr(d, name) for d in draws])
        assert abs(rate - p) < 4 * np.sqrt(p * (1 - p) / len(draws)), name
    adjusted = [d for d in draws if d.alpha != 1.0]
    assert abs(len(adjusted) / len(draws) - 0.5) < 0.035
    assert all(0.8 <= d.alpha <= 1.2 and -51 <= d.beta <= 51 for d in adjusted)
    assert all(d.beta == 0.0 for d in draws if d.alpha == 1.0)
    again = [augment.draw(aug, (256, 1600), np.random.default_rng((0, 0, i))) for i in range(50)]
    assert again == draws[:50]


@pytest.mark.parametrize("name", ["cls-effb1", "seg-unet-effb3", "seg-tiny"])
def test_training_items_crop_image_and_mask_together_and_are_reproducible(tmp_path, name):
    import cv2

    recipe = preset(name)
    image = np.zeros((256, 1600), dtype=np.uint8)
    image[:, 800:] = 255
    path = tmp_path / "bright.png"  # lossless: the bright half stays exactly where the mask is
    cv2.imwrite(str(path), image)
    mask = np.zeros((256, 1600), dtype=np.uint8)
    mask[:, 800:] = 1
    sample = Sample(path, ("", "", rle.encode(mask), ""))
    dataset = SteelDataset([sample], (256, 1600), augment.train_augment(recipe, (256, 1600)), True, seed=3)
    expected = (min(recipe.crop_height, 256), min(recipe.crop_width, 1600))
    for epoch in range(6):
        item = dataset[(epoch, 0)]
        assert item["image"].shape == (*expected, 1) and item["image"].dtype == torch.uint8
        assert item["mask"].shape == expected and item["mask"].dtype == torch.uint8
        mask = unpack_masks(item["mask"][None])[0]
        bright = item["image"][:, :, 0] > 127
        if recipe.blackout == 0:
            assert torch.equal(bright, mask[2] == 1)
        assert item["labels"].tolist() == [0, 0, int(mask[2].any()), 0] and not mask[[0, 1, 3]].any()
        assert torch.equal(dataset[(epoch, 0)]["image"], item["image"]), "an item is a function of its key"


def test_the_model_input_is_albumentations_normalisation_made_on_the_device():
    rng = np.random.default_rng(1)
    normalise = A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)
    colour = rng.integers(0, 256, (2, 8, 12, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (2, 8, 12, 1), dtype=np.uint8)
    for images, as_rgb in ((colour, colour), (grey, np.repeat(grey, 3, axis=3))):
        expected = np.stack([normalise(image=i)["image"].transpose(2, 0, 1) for i in as_rgb])
        made = model_input(torch.from_numpy(images), torch.device("cpu"))
        assert made.shape == (2, 3, 8, 12) and made.dtype == torch.float32 and made.is_contiguous()
        np.testing.assert_allclose(made.numpy(), expected, rtol=1e-6, atol=1e-6)
    last = model_input(torch.from_numpy(grey), torch.device("cpu"), channels_last=True)
    assert last.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match=r"expected uint8 \(N, H, W, 1 or 3\)"):
        model_input(torch.zeros(2, 3, 8, 12), torch.device("cpu"))


def test_packed_masks_carry_every_class_and_open_on_the_device():
    rng = np.random.default_rng(2)
    planes = (rng.random((3, 4, 16, 24)) < 0.3).astype(np.uint8)
    planes[1, 2] = 0  # an absent class
    rles = [tuple(rle.encode(m) for m in image) for image in planes]
    packed = np.stack([masks.pack(r, (16, 24))[0] for r in rles])
    assert packed.shape == (3, 16, 24) and packed.max() <= 15
    np.testing.assert_array_equal(unpack_masks(torch.from_numpy(packed)).numpy(), planes)
    np.testing.assert_array_equal(masks.labels(packed[1]), [1, 1, 0, 1])
    np.testing.assert_array_equal(masks.pack(rles[1], (16, 24))[1], [1, 1, 0, 1])
    window = masks.pack(rles[0], (16, 24), 3, 5, 8, 10, flip=-1)[0]
    np.testing.assert_array_equal(unpacked(window), planes[0][:, 3:11, 5:15][:, ::-1, ::-1])
