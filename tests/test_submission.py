import pandas as pd
import pytest

from steelkit import competition, submission

SHAPE = (64, 320)


@pytest.fixture(params=["long", "wide"])
def data(request, mini, mini_wide):
    return mini if request.param == "long" else mini_wide


def _truth(data):
    return competition.read_table(data / "test_truth.csv")[0]


def test_written_submission_follows_the_sample(data, tmp_path):
    out = submission.write(_truth(data), data / "sample_submission.csv", tmp_path / "submission.csv", SHAPE)
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    sample = pd.read_csv(data / "sample_submission.csv", dtype=str, keep_default_na=False)
    assert list(written.columns) == list(sample.columns)
    if "ImageId_ClassId" in sample:
        assert list(written["ImageId_ClassId"]) == list(sample["ImageId_ClassId"])
    else:  # four explicit rows per image, in the sample's image order
        assert list(written["ImageId"][::4]) == list(sample["ImageId"])
        assert list(written["ClassId"]) == ["1", "2", "3", "4"] * len(sample)
    assert competition.read_table(out)[0].equals(_truth(data))
    assert submission.validate(out, data / "sample_submission.csv", SHAPE) == 4 * 8
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"], "no temporary file left behind"


def test_images_without_prediction_get_empty_masks_and_a_warning(mini, tmp_path):
    truth = _truth(mini)
    with pytest.warns(UserWarning, match="3 images .* have no prediction"):
        out = submission.write(truth.iloc[3:], mini / "sample_submission.csv", tmp_path / "s.csv", SHAPE)
    table = competition.read_table(out)[0]
    assert list(table["ImageId"]) == list(truth["ImageId"])
    assert (table.iloc[:3, 1:] == "").all().all()


def test_prediction_for_an_unknown_image_is_an_error(mini, tmp_path):
    extra = pd.concat([_truth(mini), pd.DataFrame([{"ImageId": "zzz.jpg", "rle_1": "", "rle_2": "",
                                                    "rle_3": "", "rle_4": ""}])])
    with pytest.raises(submission.SubmissionError, match="zzz.jpg"):
        submission.write(extra, mini / "sample_submission.csv", tmp_path / "s.csv", SHAPE)
    assert not (tmp_path / "s.csv").exists()


def test_an_invalid_submission_is_never_written_over_a_good_one(mini, tmp_path):
    out = submission.write(_truth(mini), mini / "sample_submission.csv", tmp_path / "s.csv", SHAPE)
    good = out.read_text()
    bad = _truth(mini).assign(rle_1="1 999999")
    with pytest.raises(submission.SubmissionError, match="past the end"):
        submission.write(bad, mini / "sample_submission.csv", out, SHAPE)
    assert out.read_text() == good


def _lines(mini, tmp_path):
    out = submission.write(_truth(mini), mini / "sample_submission.csv", tmp_path / "s.csv", SHAPE)
    return out.read_text().splitlines()


@pytest.mark.parametrize("mutate, message", [
    (lambda lines: lines[:1] + lines[2:], "1 expected rows missing, first "),
    (lambda lines: lines + [lines[1]], "line 34: .* appears twice"),
    (lambda lines: lines + ["other.jpg,,1"], "line 34: other.jpg_1 is not a row of"),
    (lambda lines: lines[:2] + [lines[2].split(",")[0] + ",5 3 1 2,2"] + lines[3:], "line 3 .*overlaps"),
    (lambda lines: lines[:2] + [lines[2].split(",")[0] + ",1 x,2"] + lines[3:], "line 3 .*not an integer"),
    (lambda lines: lines[:2] + [lines[2].split(",")[0] + ",20479 5,2"] + lines[3:], "line 3 .*past the end"),
    (lambda lines: ["ImageId,ClassId,EncodedPixels"] + lines[1:], "columns"),
])
def test_every_validation_failure_names_the_row(mini, tmp_path, mutate, message):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(mutate(_lines(mini, tmp_path))) + "\n")
    with pytest.raises(submission.SubmissionError, match=message):
        submission.validate(path, mini / "sample_submission.csv", SHAPE)
