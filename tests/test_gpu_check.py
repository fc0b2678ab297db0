"""The GPU check (tests/gpu.py) kept working on the CPU, and the budget taking the rates it measures."""

from __future__ import annotations

import dataclasses
import json
import platform
from collections import Counter
from pathlib import Path

import pytest
import torch

from steelkit import budget, checkpoint, train
from steelkit.recipe import preset
from tests import gpu

RECORDS = Path(__file__).parent / "gpu-records"


@pytest.fixture(scope="module")
def tiny_check(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "gpu-check.json"
    code = gpu.main(["--device", "cpu", "--tiny", "--out", str(out), "--presets", "cls-r34", "seg-fpn-effb3-dice"])
    return code, json.loads(out.read_text())


def test_tiny_check_writes_a_plausible_record(tiny_check, capsys):
    code, record = tiny_check
    assert code == 0, record["errors"]
    assert record["errors"] == {} and record["device"]["type"] == "cpu" and record["size"] == "tiny"
    assert [row["preset"] for row in record["training"]] == ["cls-r34", "seg-fpn-effb3-dice"]
    for row in record["training"]:
        assert row["images_per_s"] > 0 and row["plain_images_per_s"] > 0 and row["contiguous_images_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["images_per_s"] / row["plain_images_per_s"])
        assert row["peak_gb"] is None and row["tflops"] > 0 and row["family"] in budget.T4_TFLOPS
        assert row["effective_batch"] % row["batch"] == 0
    loader = record["loader"]
    assert 0 <= loader["wait_share"] <= 1 and loader["fed_images_per_s"] > 0 and loader["workers"] >= 1
    assert str(loader["workers"]) in loader["fed_by_workers"]
    sub = record["submission"]
    assert sub["models"] == {"classifier": 1, "segmenter": 1} and sub["tta"] == 3
    assert sub["minutes_for_test_set"] == pytest.approx(gpu.TEST_IMAGES / sub["images_per_s"] / 60)
    assert sub["estimate_minutes_kaggle"] < sub["estimate_minutes_one_t4"]
    assert set(sub["family_tflops"]) == {"resnet", "depthwise"} and all(v > 0 for v in sub["family_tflops"].values())
    paths = record["paths"]
    assert paths["resume_cpu_to_cpu"]["ok"] and paths["resume_cpu_to_cpu"]["epochs_done"] == 2
    assert paths["amp_matches_fp32"]["ok"] and paths["ddp_nccl"]["ok"] is None and "skipped" in paths["ddp_nccl"]
    diverging = paths["diverging_run_stops"]
    assert diverging["ok"] and "training diverged in epoch 1" in diverging["said"]
    assert diverging["non_finite_checkpoints"] == []
    assert record["versions"]["python"]["here"] == platform.python_version()
    assert record["versions"]["torch"]["kaggle"] == "2.10.0"
    assert record["rates"]["device_type"] == "cpu"
    assert set(record["rates"]["inference_tflops"]) == {"resnet", "depthwise"}
    printed = gpu.table(record)
    assert "seg-fpn-effb3-dice" in printed and "[ok] amp matches fp32" in printed and "[--] ddp nccl" in printed


def test_verdicts_fail_on_cuda_when_a_check_fails(tiny_check):
    """Speed is judged on CUDA only; a failed path or section fails anywhere."""
    _, record = tiny_check
    slow = json.loads(json.dumps(record))
    slow["device"]["type"] = "cuda"
    slow["training"][0]["ratio"] = gpu.NO_SLOWER - 0.01
    assert any(passed is False and "cls-r34" in what for what, passed, _ in gpu.verdicts(slow))
    broken = json.loads(json.dumps(record))
    broken["paths"]["amp_matches_fp32"]["ok"] = False
    broken["errors"]["loader"] = "Traceback...\nRuntimeError: boom"
    failed = [what for what, passed, _ in gpu.verdicts(broken) if passed is False]
    assert failed == ["amp matches fp32", "loader ran"]


def test_seed_ensemble_is_the_submissions():
    from steelkit_kaggle import plan, settings

    config = plan.load()
    submission = settings.find(config, "steelkit r0 submission")
    members = [settings.find(config, s.split("/", 1)[-1]) for s in submission["kernels"]]
    found = Counter(m["parameters"]["PRESET"] for m in members if "PRESET" in m["parameters"])
    assert found == dict(gpu.SEED_ENSEMBLE)


def test_measured_rates_are_carried_to_a_t4():
    rates = budget.read_rates(RECORDS / "h200-1.json")
    measured = json.loads((RECORDS / "h200-1.json").read_text())["rates"]
    assert rates.inference["resnet"] == pytest.approx(measured["inference_tflops"]["resnet"] * 65 / 989)
    assert rates.training["depthwise"] == pytest.approx(measured["training_tflops"]["depthwise"] * 320 / 4800)
    assert "measured on NVIDIA H200" in rates.how and "still estimated" not in rates.how
    recipes = [preset("cls-r34"), preset("seg-unet-effb3")]
    estimated, carried = budget.estimate(recipes, 5506), budget.estimate(recipes, 5506, rates=rates)
    assert "measured" not in estimated.how and "measured on NVIDIA H200" in carried.how
    assert carried.minutes != pytest.approx(estimated.minutes)
    assert budget.estimate(recipes, 5506, rates=budget.ESTIMATED).minutes == pytest.approx(estimated.minutes)
    trained = budget.estimate_training(preset("cls-r34"), 10000, 2500, rates=rates)
    assert "measured on NVIDIA H200" in trained.how
    assert trained.train_epoch != pytest.approx(budget.estimate_training(preset("cls-r34"), 10000, 2500).train_epoch)


def test_rates_with_a_family_missing_or_from_an_unknown_device(tmp_path):
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"rates": {"device": "Tesla T4", "inference_tflops": {"resnet": 7.0},
                                             "training_tflops": {"resnet": 6.0}}}))
    rates = budget.read_rates(partial)
    assert rates.inference == {"resnet": 7.0, "depthwise": budget.T4_TFLOPS["depthwise"]}
    assert "depthwise still estimated" in rates.how
    cpu = tmp_path / "cpu.json"
    cpu.write_text(json.dumps({"rates": {"device": "x86_64", "inference_tflops": {}, "training_tflops": {}}}))
    with pytest.raises(ValueError, match="x86_64.*cannot be carried"):
        budget.read_rates(cpu)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        budget.read_rates(tmp_path / "bad.json")


def test_budget_and_plan_say_which_rates(capsys):
    import build_kernel
    from steelkit import cli

    assert cli.main(["budget", "--train", "cls-r34", "--rates", str(RECORDS / "h200-1.json")]) == 0
    assert "measured on NVIDIA H200" in capsys.readouterr().out
    assert cli.main(["budget", "--train", "cls-r34"]) == 0
    assert "measured" not in capsys.readouterr().out
    assert build_kernel.main(["plan", "--quota-hours", "30"]) == 0
    estimated = capsys.readouterr().out
    assert build_kernel.main(["plan", "--quota-hours", "30", "--rates", str(RECORDS / "h200-2.json")]) == 0
    measured = capsys.readouterr().out
    assert "GPU throughputs: estimated" in estimated and "GPU throughputs: measured on NVIDIA H200" in measured
    total = [float(text.split("total: ")[1].split(" GPU")[0]) for text in (estimated, measured)]
    assert total[1] > total[0]


@pytest.mark.parametrize("first_enabled", [True, False])
def test_resume_across_an_enabled_and_a_disabled_scaler(tmp_path, mini, monkeypatch, first_enabled):
    """A last.pt saved with AMP's scaler on (CUDA) resumes with it off (the CPU), and the reverse."""
    recipe = dataclasses.replace(preset("seg-tiny"), epochs=2, n_folds=3, image_cache="off")

    def scaler(enabled):
        return lambda device, recipe: torch.amp.GradScaler("cpu", enabled=enabled)

    monkeypatch.setattr(train, "make_scaler", scaler(first_enabled))
    train.train(recipe, mini, tmp_path, epochs_now=1, device="cpu")
    saved = checkpoint.load_state(tmp_path / checkpoint.LAST)["scaler"]
    assert bool(saved) == first_enabled
    monkeypatch.setattr(train, "make_scaler", scaler(not first_enabled))
    done = train.train(recipe, mini, tmp_path, resume=True, device="cpu")
    assert done["epochs_done"] == 2 and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in done["history"])
    assert bool(checkpoint.load_state(tmp_path / checkpoint.LAST)["scaler"]) == (not first_enabled)
