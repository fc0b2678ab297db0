"""The submission's run-time budget: assumptions per architecture family, two T4s, per stage, or measured."""

import subprocess
import sys

import pytest

from steelkit import budget, checkpoint
from steelkit.recipe import preset


def test_assumptions_per_family_and_per_stage():
    assert budget.family(preset("seg-fpn-effb3")) == "depthwise" and budget.family(preset("cls-r34")) == "resnet"
    recipes = [preset("cls-tiny"), preset("seg-tiny")]
    two = budget.estimate(recipes, 1000, 3, gpus=2, shape=(64, 320))
    one = budget.estimate(recipes, 1000, 3, gpus=1, shape=(64, 320))
    assert set(two.per_stage) == {"classifier", "segmenter", "cpu"}
    for stage in ("classifier", "segmenter"):
        assert two.per_stage[stage] == pytest.approx(one.per_stage[stage] / 2)
    assert "estimated on 2 T4s" in str(two) and "segmenter" in str(two)
    resnet = budget.estimate([preset("cls-tiny")], 1000, 1, gpus=1, shape=(64, 320))
    as_depthwise = budget.estimate([preset("cls-tiny")], 1000, 1, gpus=1, shape=(64, 320),
                                   tflops=budget.T4_TFLOPS["depthwise"])
    assert as_depthwise.per_stage["classifier"] == pytest.approx(4 * resnet.per_stage["classifier"], rel=0.01)


def test_measure_times_the_real_models_here(trained):
    models = [checkpoint.load_model(trained / name) for name in ("cls-tiny", "seg-tiny")]
    result = budget.measure([(m, r.stage) for m, r in models], 100, 2, batch_size=2, device="cpu", shape=(64, 320),
                            repeats=1)
    assert result.minutes > result.per_stage["cpu"] > 0 and result.per_stage["segmenter"] > 0
    assert str(result).startswith("measured on cpu:")


def test_the_command_line_says_plainly_when_the_ensemble_is_over_the_cap(trained):
    done = subprocess.run([sys.executable, "-m", "steelkit", "budget", "--segmenters", trained / "seg-tiny",
                           "--images", "50000000", "--gpus", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "EXCEEDS the competition's 60-minute cap" in done.stdout


def test_the_estimate_says_plainly_when_an_ensemble_is_too_slow():
    small = budget.estimate([preset("seg-tiny")], 100, 1)
    huge = budget.estimate([preset("seg-tiny")] * 40, 5506, 3, tflops=0.5, gpus=1)
    assert not small.over_limit and "within" in str(small)
    assert huge.over_limit and "EXCEEDS the competition's 60-minute cap" in str(huge)
