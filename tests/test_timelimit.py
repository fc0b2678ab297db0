"""The session cap kept by the training loop, driven by an injected clock."""

import subprocess
import sys

import pandas as pd
import pytest
import torch

from steelkit import checkpoint, timelimit, train
from steelkit.recipe import override, preset


def test_durations_parse_and_bad_ones_are_named():
    assert timelimit.parse_duration("11h30m") == 41400
    assert timelimit.parse_duration("90m") == 5400 and timelimit.parse_duration("3600") == 3600
    assert timelimit.parse_duration("1h 5m 30s") == 3930 and timelimit.parse_duration(12.5) == 12.5
    assert timelimit.parse_duration(timelimit.KERNEL_LIMIT) == timelimit.SESSION_CAP - timelimit.MARGIN
    for bad in ("11x", "h", "-5", "0", ""):
        with pytest.raises(ValueError, match="time limit"):
            timelimit.parse_duration(bad)


def test_the_next_epoch_is_refused_from_the_slowest_recent_epoch_and_the_final_pass():
    now = [0.0]
    deadline = timelimit.Deadline(100, clock=lambda: now[0])
    assert deadline.next_epoch_problem([], last_epoch=False, segmenter=True) is None  # nothing measured yet
    deadline.record(30, 5)
    deadline.record(20, 5)
    now[0] = 65  # 35 s left: one more 30 s epoch fits, not with a 2 x 5 s final pass too
    assert deadline.next_epoch_problem([], last_epoch=False, segmenter=True) is None
    assert deadline.next_epoch_problem([], last_epoch=True, segmenter=False) is None
    assert "final pass" in deadline.next_epoch_problem([], last_epoch=True, segmenter=True)
    now[0] = 75
    assert "an epoch takes about 30 s" in deadline.next_epoch_problem([], last_epoch=False, segmenter=False)
    resumed = timelimit.Deadline(100, clock=lambda: 80.0, started=0.0)  # a resumed run: the history measured
    assert resumed.next_epoch_problem([{"seconds": 30, "val_seconds": 5}], False, False)


class Clock:
    """Each reading one second later than the last: the loop's own readings are the only time that passes."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1.0
        return self.now


def test_a_run_whose_next_epoch_would_not_fit_stops_and_resumes_to_the_same_end(mini, tmp_path):
    recipe = override(preset("seg-tiny"), ["epochs=3", "n_folds=3", "batch_size=4", "effective_batch=8"])
    clock = Clock()
    stopped = train.train(recipe, mini, tmp_path / "split", device="cpu", time_limit=10, clock=clock)
    assert 1 <= stopped["epochs_done"] < 3 and "stopped before epoch" in stopped["stopped"]
    assert f"of {recipe.epochs}" in stopped["stopped"] and "resume" in stopped["stopped"]
    state = checkpoint.load_state(tmp_path / "split" / "last.pt")
    assert state["epoch"] + 1 == stopped["epochs_done"]
    assert len(pd.read_csv(tmp_path / "split" / "metrics.csv")) == stopped["epochs_done"]
    assert (tmp_path / "split" / "curves.png").is_file()
    assert clock.now <= 10 + max(row["seconds"] for row in stopped["history"])  # it stopped in time

    train.train(recipe, mini, tmp_path / "split", resume=True, device="cpu")
    train.train(recipe, mini, tmp_path / "whole", device="cpu")
    whole, split = (checkpoint.load_state(tmp_path / run / "last.pt") for run in ("whole", "split"))
    assert whole["epoch"] == split["epoch"] == 2
    for key, value in whole["model"].items():
        torch.testing.assert_close(split["model"][key], value, rtol=0, atol=0, msg=key)
    metrics = [pd.read_csv(tmp_path / run / "metrics.csv") for run in ("whole", "split")]
    figures = [c for c in metrics[0].columns if c not in ("seconds", "val_seconds")]
    pd.testing.assert_frame_equal(metrics[0][figures], metrics[1][figures])
    for name in ("best.pt", "oof.npz"):
        assert (tmp_path / "split" / name).is_file()
    assert torch.equal(checkpoint.load_state(tmp_path / "split" / "best.pt")["model"]["segmentation_head.0.weight"],
                       checkpoint.load_state(tmp_path / "whole" / "best.pt")["model"]["segmentation_head.0.weight"])


def test_a_limit_that_cannot_hold_one_epoch_is_named_with_last_pt_kept(mini, tmp_path):
    recipe = override(preset("cls-tiny"), ["epochs=2", "n_folds=3"])
    with pytest.raises(ValueError, match="cannot hold one epoch"):
        train.train(recipe, mini, tmp_path / "run", device="cpu", time_limit=0.01)
    assert (tmp_path / "run" / "last.pt").is_file()
    bad = subprocess.run([sys.executable, "-m", "steelkit", "train", "--preset", "cls-tiny", "--data", str(mini),
                          "--out", str(tmp_path / "other"), "--time-limit", "11x"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "time limit '11x'" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "other" / "last.pt").exists()


def test_figures_come_in_units_that_fit_them():
    from steelkit import units

    assert [units.duration(s) for s in (4.2, 42, 210, 41400)] == ["4.2 s", "42 s", "3.5 min", "11.50 h"]
    assert [units.size(b) for b in (512e3, 38.4e6, 2.1e9)] == ["512 kB", "38.4 MB", "2.1 GB"]
    deadline = timelimit.Deadline(12.0, started=0.0, clock=lambda: 10.0)
    deadline.record(3.0, 1.0)
    assert deadline.next_epoch_problem([], False, False) == ("2.0 s of the 12 s time limit left; an epoch takes "
                                                             "about 3.0 s")
