import numpy as np
import pandas as pd
import pytest

from steelkit import pseudo


@pytest.mark.parametrize("cls, seg, chosen", [
    ([0.99, 0.01, 0.02, 0.97], [True, False, False, True], True),  # sure, and the masks agree
    ([0.01, 0.01, 0.01, 0.01], [False, False, False, False], True),  # sure there is nothing
    ([0.99, 0.01, 0.50, 0.01], [True, False, False, False], False),  # class 3 unsure
    ([0.96, 0.01, 0.01, 0.01], [False, False, False, False], False),  # sure of class 1, but no mask survived
    ([0.01, 0.01, 0.01, 0.01], [False, False, True, False], False),  # sure of nothing, segmenter found class 3
    ([0.95, 0.05, 0.01, 0.01], [True, False, False, False], False),  # the bounds are strict
])
def test_the_seed_rule(cls, seg, chosen):
    assert pseudo.choose(np.array(cls, np.float32), np.array(seg)) is chosen


def test_rows_round_trip_to_a_canonical_table(tmp_path):
    rows = pseudo.pseudo_rows("a.jpg", ["1 3", "", "", ""], 2, "cls/best.pt;seg/best.pt")
    rows += pseudo.pseudo_rows("b.jpg", ["", "", "", ""], 2, "cls/best.pt;seg/best.pt")
    path = pseudo.write_pseudo_labels(rows, tmp_path / "pseudo.csv")
    frame = pd.read_csv(path, keep_default_na=False)
    assert list(frame.columns) == list(pseudo.PSEUDO_COLUMNS) and len(frame) == 8
    assert set(frame["round"]) == {2}
    table = pseudo.read_pseudo_labels(path)
    assert table.to_dict("records") == [
        {"ImageId": "a.jpg", "rle_1": "1 3", "rle_2": "", "rle_3": "", "rle_4": ""},
        {"ImageId": "b.jpg", "rle_1": "", "rle_2": "", "rle_3": "", "rle_4": ""}]


def test_bad_pseudo_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        pseudo.read_pseudo_labels(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("ImageId,EncodedPixels\na.jpg,1 2\n")
    with pytest.raises(ValueError, match="missing columns"):
        pseudo.read_pseudo_labels(tmp_path / "bad.csv")
