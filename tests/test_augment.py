import albumentations as A
import numpy as np
import pytest

from steelkit import augment
from steelkit.recipe import preset


def _image_and_mask():
    image = np.full((32, 48, 3), 200, dtype=np.uint8)
    mask = np.zeros((32, 48, 4), dtype=np.uint8)
    mask[2:6, 3:9, 0] = 1  # class 1
    mask[20:30, 30:45, 2] = 1  # class 3, first region
    mask[10:12, 20:22, 2] = 1  # class 3, second region
    return image, mask


def test_blackout_functions_clear_only_the_region():
    image, mask = _image_and_mask()
    region = mask[:, :, 0].astype(bool)
    out_image, out_mask = augment.blackout_image(image, region), augment.blackout_mask(mask, region)
    assert (out_image[region] == 0).all() and (out_image[~region] == 200).all()
    assert out_mask[:, :, 0].sum() == 0
    np.testing.assert_array_equal(out_mask[:, :, 1:], mask[:, :, 1:])
    assert image.min() == 200 and mask[:, :, 0].sum() == 24, "inputs are never mutated"


def test_defect_regions_are_components_per_class():
    _, mask = _image_and_mask()
    regions = augment.defect_regions(mask)
    assert sorted(int(r.sum()) for r in regions) == [4, 24, 150]


def test_blackout_transform_drops_exactly_one_region_and_its_label():
    image, mask = _image_and_mask()
    transform = A.Compose([augment.DefectBlackout(p=1.0)], seed=0)
    seen = set()
    for _ in range(30):
        out = transform(image=image, mask=mask)
        removed = (mask.astype(bool) & ~out["mask"].astype(bool)).any(axis=2)
        blacked = (out["image"] == 0).all(axis=2)
        np.testing.assert_array_equal(removed, blacked)  # the blacked-out region is the removed one
        assert int(removed.sum()) in (4, 24, 150)
        assert (out["image"][~blacked] == 200).all()
        seen.add(int(removed.sum()))
    assert seen == {4, 24, 150}, "every region gets drawn"
    assert image.min() == 200


def test_blackout_is_reproducible_for_a_seed_and_a_no_op_without_defects():
    image, mask = _image_and_mask()
    runs = [[A.Compose([augment.DefectBlackout(p=1.0)], seed=4)(image=image, mask=mask)["mask"].sum()
             for _ in range(5)] for _ in range(2)]
    assert runs[0] == runs[1]
    empty = np.zeros_like(mask)
    out = A.Compose([augment.DefectBlackout(p=1.0)], seed=0)(image=image, mask=empty)
    np.testing.assert_array_equal(out["image"], image)


@pytest.mark.parametrize("name", ["cls-effb1", "seg-unet-effb3", "seg-tiny"])
def test_training_pipeline_crops_image_and_mask_together(name):
    recipe = preset(name)
    transform = augment.train_transform(recipe, (256, 1600))
    image = np.zeros((256, 1600, 3), dtype=np.uint8)
    image[:, 800:] = 255
    mask = np.zeros((256, 1600, 4), dtype=np.uint8)
    mask[:, 800:, 2] = 1
    out = transform(image=image, mask=mask)
    expected = (min(recipe.crop_height, 256), min(recipe.crop_width, 1600))
    assert out["image"].shape == (*expected, 3) and out["mask"].shape == (*expected, 4)
    assert out["image"].dtype == np.float32
    bright = out["image"][:, :, 0] > 0  # normalised: white stays positive, black negative
    np.testing.assert_array_equal(bright, out["mask"][:, :, 2] == 1)
