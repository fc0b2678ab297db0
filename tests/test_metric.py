import numpy as np
import pandas as pd
import pytest

from steelkit import metric, rle


def _masks(*areas):
    """(1, 4, 4, 4) masks whose class k has its first areas[k] pixels (column-major) set."""
    masks = np.zeros((1, 4, 4, 4), dtype=np.uint8)
    for k, n in enumerate(areas):
        masks[0, k].T.flat[:n] = 1
    return masks


def test_hand_computed_pairs():
    truth = _masks(0, 0, 4, 8)
    pred = _masks(0, 3, 2, 4)
    # empty/empty = 1, empty truth + 3 predicted = 0, |X&Y|=2 of 4+2 -> 2/3, 4 of 8+4 -> 2/3
    np.testing.assert_allclose(metric.dice_masks(truth, pred), [[1.0, 0.0, 2 / 3, 2 / 3]])
    assert metric.summarize(metric.dice_masks(truth, pred))["mean"] == pytest.approx((1 + 0 + 4 / 3) / 4)


def test_prediction_missing_a_defect_scores_zero():
    assert metric.dice_masks(_masks(5, 0, 0, 0), _masks(0, 0, 0, 0))[0, 0] == 0.0


def test_tables_cover_the_union_of_images_and_score_like_masks():
    shape = (4, 4)
    truth = pd.DataFrame({"ImageId": ["a", "b"], "rle_1": ["1 4", ""], "rle_2": ["", ""],
                          "rle_3": ["", "1 8"], "rle_4": ["", ""]})
    pred = pd.DataFrame({"ImageId": ["a", "b", "c"], "rle_1": ["1 2", "", ""], "rle_2": ["", "3 1", ""],
                         "rle_3": ["", "5 8", ""], "rle_4": ["", "", ""]})
    scores = metric.dice_tables(truth, pred, shape)
    assert list(scores["ImageId"]) == ["a", "b", "c"]
    np.testing.assert_allclose(scores[[1, 2, 3, 4]].to_numpy(),
                               [[2 * 2 / 6, 1, 1, 1], [1, 0, 2 * 4 / 16, 1], [1, 1, 1, 1]])
    decoded_truth = np.array([[rle.decode(r, shape) for r in row] for row in
                              truth.set_index("ImageId").reindex(["a", "b", "c"], fill_value="").to_numpy()])
    decoded_pred = np.array([[rle.decode(r, shape) for r in row] for row in pred.iloc[:, 1:].to_numpy()])
    np.testing.assert_allclose(scores[[1, 2, 3, 4]].to_numpy(), metric.dice_masks(decoded_truth, decoded_pred))


def test_report_first_line_and_baseline():
    report = metric.format_report({"mean": 0.8712, "class_1": 1, "class_2": 0.5, "class_3": 1, "class_4": 1},
                                  {"mean": 0.85, "class_1": 1, "class_2": 1, "class_3": 0.4, "class_4": 1})
    lines = report.splitlines()
    assert lines[0] == "mean Dice: 0.87120"
    assert "all-empty" in lines[1] and lines[3].split() == ["1", "1.00000", "1.00000"]
