"""Run-time budgets: the submission's and each training kernel's, from stated assumptions, or measured."""

import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from steelkit import budget, models
from steelkit.recipe import override, preset


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
    loaded = [models.load_model(trained / name) for name in ("cls-tiny", "seg-tiny")]
    result = budget.measure([(m, r.stage) for m, r in loaded], 100, 2, batch_size=2, device="cpu", shape=(64, 320),
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


def test_a_training_budget_equals_the_hand_computation_from_its_counted_flops():
    recipe = override(preset("seg-tiny"), ["epochs=7"])
    shape, crop = (64, 320), (recipe.crop_height, recipe.crop_width)
    forward_crop, forward_full = budget.model_flops(recipe, crop), budget.model_flops(recipe, shape)
    rate = budget.T4_TFLOPS["depthwise"] * 1e12  # a mobilenet encoder: the depthwise family
    result = budget.estimate_training(recipe, n_train=1000, n_valid=250, gpus=2, shape=shape)
    gpu_epoch = 1000 * 3 * forward_crop / (rate * 2 * budget.DDP_EFFICIENCY)
    loader_epoch = 1000 * budget.LOADER_SECONDS["train"] / budget.KAGGLE_CPU_CORES
    valid = 250 * max(forward_full / (rate * 2), budget.LOADER_SECONDS["full"] / budget.KAGGLE_CPU_CORES)
    assert result.train_epoch == pytest.approx(max(gpu_epoch, loader_epoch))
    assert result.bound == ("GPU" if gpu_epoch >= loader_epoch else "loader")
    assert result.valid_epoch == pytest.approx(valid)
    assert result.final == pytest.approx(valid + 250 * budget.TABLES_SECONDS)
    assert result.startup == pytest.approx(budget.STARTUP_SECONDS + 1250 * budget.DECODE_SECONDS / 4)
    assert result.seconds == pytest.approx(result.startup + 7 * (result.train_epoch + valid) + result.final)
    classifier = budget.estimate_training(override(preset("cls-tiny"), ["epochs=7"]), 1000, 250, shape=shape)
    assert classifier.final == 0  # only segmenters write the threshold tables
    measured = budget.estimate_training(recipe, 1000, 250, gpus=1, shape=shape,
                                        measured={"train_item": 0.5, "valid_item": 0.1, "loader_item": 0.004})
    assert measured.train_epoch == pytest.approx(500) and measured.bound == "GPU"
    assert measured.valid_epoch == pytest.approx(25) and "measured on 1 T4" in str(measured)


def test_a_depthwise_convolution_costs_three_forwards_not_what_the_counter_says_of_its_backward():
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False)
    images = torch.randn(1, 64, 32, 32, requires_grad=True)
    forward, both = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with forward:
        conv(images)
    with both:
        conv(images).sum().backward()
    assert both.get_total_flops() > 20 * forward.get_total_flops()  # torch counts its backward as dense
    assert budget.TRAIN_STEP_FACTOR * forward.get_total_flops() < both.get_total_flops() / 5


def test_a_kernel_longer_than_a_session_splits_into_parts_that_each_fit():
    long = budget.TrainingEstimate("seg", epochs=900, train_epoch=100.0, valid_epoch=20.0, final=300.0, startup=200.0,
                                   bound="GPU")
    parts = long.parts(12)
    assert sum(parts) == 900 and len(parts) > 1
    for number, epochs in enumerate(parts):
        last = number == len(parts) - 1
        assert long.startup + epochs * long.epoch + (long.final if last else 0) <= 12 * 3600
    assert budget.TrainingEstimate("seg", 5, 100.0, 20.0, 300.0, 200.0, "GPU").parts(12) == [5]
    with pytest.raises(ValueError, match="does not fit"):
        budget.TrainingEstimate("seg", 5, 50000.0, 20.0, 300.0, 200.0, "GPU").parts(12)


def test_measure_training_times_real_steps_here():
    measured = budget.measure_training(preset("seg-tiny"), device="cpu", steps=1, shape=(64, 320), batch_size=2)
    assert measured["train_item"] > 0 and measured["valid_item"] > 0


def test_measure_loader_times_the_cached_pipeline_through_a_loader(mini):
    per_item = budget.measure_loader(preset("cls-tiny"), sorted((mini / "train_images").glob("*.jpg")), workers=1)
    assert 0 < per_item < 0.5


def test_the_command_line_estimates_a_training_kernel_and_its_parts():
    done = subprocess.run([sys.executable, "-m", "steelkit", "budget", "--train", "seg-tiny", "--set", "epochs=900000",
                           "--train-images", "1000"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("seg-tiny fold 0:")
    assert "longer than Kaggle's session limit of 11.5 hours:" in done.stdout
