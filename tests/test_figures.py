"""The pictures: valid PNGs of a sensible size, drawn headless, that change when the data change."""

import struct

import pandas as pd

from steelkit import figures


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _history(scale: float) -> pd.DataFrame:
    epochs = range(1, 6)
    return pd.DataFrame({"epoch": list(epochs), "lr": [1e-3 / e for e in epochs],
                         "train_loss": [scale / e for e in epochs], "val_loss": [scale / e + 0.1 for e in epochs],
                         "score": [0.5 + 0.05 * e for e in epochs],
                         **{f"dice_class_{k}": [0.1 * k + 0.02 * e for e in epochs] for k in (1, 2, 3, 4)}})


def test_training_curves(tmp_path):
    first = figures.training_curves(_history(1.0), tmp_path / "a.png", "seg-tiny fold 0")
    width, height = png_size(first)
    assert 800 <= width <= 2000 and 250 <= height <= 800
    second = figures.training_curves(_history(3.0), tmp_path / "b.png")
    assert first.read_bytes() != second.read_bytes(), "other losses, another picture"
    classifier = _history(1.0).drop(columns=[f"dice_class_{k}" for k in (1, 2, 3, 4)])
    classifier = classifier.assign(**{f"f1_{k}": 0.5 for k in (1, 2, 3, 4)})
    png_size(figures.training_curves(classifier, tmp_path / "c.png"))


def test_threshold_search_and_score_bars(tmp_path):
    curve = {"pixel": {"grid": [0.3, 0.5, 0.7], "dice": [0.8, 0.9, 0.85], "seed": 0.55, "chosen": 0.5},
             "min_total": {"grid": [0, 600, 2000], "dice": [0.7, 0.9, 0.88], "seed": 600, "chosen": 600}}
    search = figures.threshold_search([curve] * 4, tmp_path / "t.png")
    assert png_size(search)[1] >= 600
    moved = {**curve, "pixel": {**curve["pixel"], "chosen": 0.7}}
    assert figures.threshold_search([moved] * 4, tmp_path / "u.png").read_bytes() != search.read_bytes()
    scores = {"mean": 0.9, **{f"class_{k}": 0.8 + 0.02 * k for k in (1, 2, 3, 4)}}
    bars = figures.score_bars({"round 1": scores}, {k: v - 0.1 for k, v in scores.items()}, tmp_path / "s.png")
    assert png_size(bars)[0] >= 600
