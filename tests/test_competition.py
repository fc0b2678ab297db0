import cv2
import numpy as np
import pandas as pd
import pytest

from steelkit import competition, paths, rle


def test_both_schemas_read_into_the_same_table(mini, mini_wide):
    long = competition.read_labels(mini / "train.csv", mini / "train_images")
    wide = competition.read_labels(mini_wide / "train.csv", mini_wide / "train_images")
    long = long.sort_values("ImageId").reset_index(drop=True)
    wide = wide.sort_values("ImageId").reset_index(drop=True)
    pd.testing.assert_frame_equal(long, wide)
    assert len(long) == 24 and list(long.columns) == ["ImageId", "rle_1", "rle_2", "rle_3", "rle_4"]


def test_long_schema_without_image_dir_has_only_defect_images(mini):
    table = competition.read_labels(mini / "train.csv")
    assert competition.presence(table).any(axis=1).all()
    assert len(table) < 24


def test_sample_submissions_read_their_image_lists(mini, mini_wide):
    long, schema_long, columns = competition.read_table(mini / "sample_submission.csv", sample=True)
    wide, schema_wide, _ = competition.read_table(mini_wide / "sample_submission.csv")
    assert (schema_long, schema_wide) == ("long", "wide")
    assert columns == ["ImageId", "EncodedPixels", "ClassId"]
    assert list(long["ImageId"]) == list(wide["ImageId"]) and len(long) == 8
    assert not competition.presence(long).any(), "ClassId 0 rows name images only, their RLE is a placeholder"


def test_long_rows_in_any_column_order(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("EncodedPixels,ImageId,ClassId\n1 3,a.jpg,3\n5 2,a.jpg,1\n,b.jpg,0\n")
    table, _, _ = competition.read_table(path)
    assert table.to_dict("records") == [
        {"ImageId": "a.jpg", "rle_1": "5 2", "rle_2": "", "rle_3": "1 3", "rle_4": ""},
        {"ImageId": "b.jpg", "rle_1": "", "rle_2": "", "rle_3": "", "rle_4": ""}]


@pytest.mark.parametrize("text, message", [
    ("ImageId,Class,EncodedPixels\na.jpg,1,1 2\n", "unknown columns"),
    ("ImageId,ClassId,EncodedPixels\na.jpg,1,1 2\na.jpg,5,1 2\n", "row 3: class '5'"),
    ("ImageId,ClassId,EncodedPixels\na.jpg,1,1 2\na.jpg,1,3 2\n", "row 3: image a.jpg class 1 appears twice"),
    ("ImageId_ClassId,EncodedPixels\na.jpg_1,\na.jpg,\n", "row 3: ImageId_ClassId 'a.jpg'"),
    ("ImageId_ClassId,EncodedPixels\na.jpg_x,\n", "row 2: class 'x'"),
])
def test_bad_tables_name_the_file_and_row(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        competition.read_table(path)
    assert "bad.csv" in str(info.value) or "columns" in str(info.value)


def test_read_image_and_its_errors(mini, tmp_path):
    image = competition.read_image(next((mini / "train_images").iterdir()))
    assert image.shape == (64, 320, 3) and image.dtype == np.uint8
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        competition.read_image(tmp_path / "nope.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="broken.jpg: not a readable image"):
        competition.read_image(broken)


def test_image_shape_is_read_from_the_data(mini):
    assert competition.image_shape(mini) == (64, 320)


def test_decode_row_uses_the_images_own_size(mini):
    table = competition.read_labels(mini / "train.csv", mini / "train_images")
    masks = competition.decode_row(table.iloc[0, 1:], (64, 320))
    assert masks.shape == (4, 64, 320)
    assert [rle.encode(m) for m in masks] == list(table.iloc[0, 1:])


def test_find_data_dir(mini, monkeypatch, tmp_path):
    assert paths.find_data_dir(mini) == mini
    monkeypatch.setenv(paths.DATA_ENV, str(mini))
    assert paths.find_data_dir() == mini
    monkeypatch.delenv(paths.DATA_ENV)
    (tmp_path / paths.COMPETITION_SLUG).symlink_to(mini)
    monkeypatch.setenv(paths.INPUT_ENV, str(tmp_path))
    assert paths.find_data_dir() == tmp_path / paths.COMPETITION_SLUG
    with pytest.raises(FileNotFoundError, match="no competition data"):
        paths.find_data_dir(tmp_path / "empty")


def test_grayscale_decoding_is_used_only_where_it_is_exact(mini, tmp_path):
    images = sorted((mini / "train_images").iterdir())
    assert competition.grayscale_is_exact(images), "synthetic images are grey in three channels, as the real ones"
    np.testing.assert_array_equal(competition.read_image(images[0], grayscale=True), competition.read_image(images[0]))
    colour = np.zeros((32, 96, 3), np.uint8)
    colour[..., 2] = 200  # one red image among grey ones: colour decoding for all
    cv2.imwrite(str(tmp_path / "red.png"), colour)
    assert not competition.grayscale_is_exact([tmp_path / "red.png", *images])
    assert not competition.grayscale_is_exact([tmp_path / "missing.jpg"])
