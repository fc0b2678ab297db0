"""The campaign's tiny twin: what it keeps of every kernel and what it shrinks, the demo as a slice of it, and
the twin that goes to Kaggle as CPU kernels."""

import json

from steelkit.recipe import preset
from steelkit_kaggle import demo, notebooks, plan, settings, twins
from tests.test_kaggle_staging import local_wheels  # noqa: F401 (a fixture)

REAL = plan.load()


def test_each_twin_keeps_the_stage_architecture_loss_and_optimizer_of_the_preset_it_replaces(tmp_path):
    config = twins.load(tmp_path, twins.REHEARSAL)
    slugs = [k["slug"] for k in config["kernels"]]
    assert len(slugs) == len(REAL["kernels"]) + 1, "every kernel, one of them in two parts"
    assert {twins.twin_title(k["slug"]) for k in REAL["kernels"]} <= set(slugs)
    assert all(s.startswith("rehearse-r") for s in slugs), "slugs of their own"
    for kernel in config["kernels"]:
        assert not kernel["gpu"]
        if not kernel["source"].startswith("train_"):
            continue
        twin, real = plan.recipe_of(kernel), preset(kernel["parameters"]["PRESET"])
        kept = ("stage", "arch", "loss", "optimizer", "pos_weight", "blackout", "lr", "n_folds")
        assert [getattr(twin, f) for f in kept] == [getattr(real, f) for f in kept], kernel["slug"]
        assert twin.encoder == twins.TWIN_ENCODERS[real.encoder] != real.encoder
        assert (twin.crop_height, twin.crop_width, twin.epochs <= 3) == (64, 128, True)
        assert twin.effective_batch // twin.batch_size == 2, "gradients still accumulate"
        weights = kernel["parameters"].get("ENCODER_WEIGHTS")
        assert weights in (None, f"steelkit-encoder-weights/{twin.encoder}.safetensors")
        if kernel["round"] > 0:  # fine-tunes the previous round's twin of its preset and fold, with pseudo labels
            previous = f"rehearse-r{kernel['round'] - 1}-train-{kernel['preset']}-fold-{kernel['fold']}"
            assert kernel["parameters"]["INIT_FROM"].split("/")[0] in (previous, previous + "-part-2")
            assert kernel["parameters"]["PSEUDO_LABELS"] == f"rehearse-r{kernel['round'] - 1}-submission/pseudo.csv"
            assert twin.epochs == 1 and twin.warmup_epochs == 0
        if "seg-fpn-effb3-dice" in kernel["slug"] and kernel["round"] == 0:  # the FPN+Dice stage starts from the FPN
            assert kernel["parameters"]["INIT_FROM"].startswith("rehearse-r0-train-seg-fpn-effb3-fold-")
    parts = [k for k in config["kernels"] if "part" in k]
    assert [(k["slug"], k["part"]) for k in parts] == [
        ("rehearse-r0-train-seg-unet-effb3-fold-0", [1, 2]), ("rehearse-r0-train-seg-unet-effb3-fold-0-part-2", [2, 2])]
    assert parts[0]["parameters"]["EPOCHS_NOW"] == 2 and parts[1]["parameters"]["RESUME_FROM"] == parts[0]["slug"]
    tuning = settings.find(config, "rehearse-r0-tune-thresholds")
    assert f"{{user}}/{parts[1]['slug']}" in tuning["kernels"] and settings.gate_folds(config["kernels"], tuning) == [
        0, 1, 2]
    assert twins.encoders(config) == ["efficientnet-b0", "resnet18"]


def test_the_demo_is_a_slice_of_the_same_twin_not_a_chain_of_its_own(tmp_path):
    config = twins.load(tmp_path, demo.DEMO)
    assert [k["slug"] for k in config["kernels"]] == [
        f"rehearse-r{r}-{name}" for r in (0, 1) for name in (
            "train-cls-r34-fold-0", "train-seg-unet-effb3-fold-0", "tune-thresholds", "submission")]
    assert not any("demo" in k["slug"] for k in REAL["kernels"]), "kernels.json holds no demo chain"
    tuning = settings.find(config, "rehearse-r1-tune-thresholds")
    assert sorted(tuning["kernels"]) == ["{user}/rehearse-r1-train-cls-r34-fold-0",
                                         "{user}/rehearse-r1-train-seg-unet-effb3-fold-0"]
    assert plan.recipe_of(settings.find(config, "rehearse-r0-train-seg-unet-effb3-fold-0")).epochs == 15


def test_the_twin_for_kaggle_is_cpu_kernels_on_a_subset_of_the_real_images(tmp_path):
    config = twins.load(tmp_path, twins.KAGGLE)
    for kernel in config["kernels"]:
        meta = notebooks.metadata(kernel, config, "alice")
        assert meta["enable_gpu"] is False and "machine_shape" not in meta
        assert "alice/steelkit-encoder-weights" not in meta["dataset_sources"], "no ImageNet weights to attach"
        assert plan.gpu_hours(kernel, config) == 0
        if kernel["source"].startswith("train_"):
            assert plan.recipe_of(kernel).train_images == 400 and "ENCODER_WEIGHTS" not in kernel["parameters"]
        else:
            assert kernel["parameters"]["TTA"] == ["none"], "5,506 test images on Kaggle's CPUs"
    written = json.loads((tmp_path / "kernels.json").read_text())
    assert written["campaign"]["twin"] == "kaggle"


def test_twin_titles_rename_the_campaign_and_nothing_else():
    assert twins.twin_title("steelkit r{round} train {preset}") == "rehearse r{round} train {preset}"
    assert twins.twin_title("{user}/steelkit-r0-submission") == "{user}/rehearse-r0-submission"
    assert twins.twin_title("steelkit-r{previous}-tune/inference.json") == "rehearse-r{previous}-tune/inference.json"
    assert twins.twin_title("{user}/steelkit-wheels") == "{user}/steelkit-wheels"


def test_the_rehearsal_names_a_failing_kernel_and_its_cell_then_goes_on_after_what_completed(
        local_wheels, tmp_path):  # noqa: F811
    from steelkit_kaggle import dress_rehearsal

    data = dress_rehearsal.Data(n_train=20, n_test=4, shape=(64, 320))
    said = []
    broken = twins.Profile("broken", epochs=1, overrides=("num_workers=0", "encoder=no-such-encoder"))
    code = dress_rehearsal.main(tmp_path, ["steelkit-r0-train-cls-r34-fold-0"], broken, data,
                                wheels_from=local_wheels, echo=said.append)
    text = "\n".join(said)
    assert code == 1 and "rehearse-r0-train-cls-r34-fold-0 failed in cell" in text
    assert "(from steelkit.launch import train_in_kernel)" in text and "no-such-encoder" in text, text[-2000:]
    assert list((tmp_path / "input").glob("*")) and not (tmp_path / "input" / "test_truth.csv").exists()

    fixed = twins.Profile("fixed", epochs=1)
    said.clear()
    assert dress_rehearsal.main(tmp_path, ["steelkit-r0-train-cls-r34-fold-0"], fixed, data,
                                wheels_from=local_wheels, echo=said.append) == 0, "\n".join(said)
    assert any("rehearse-r0-train-cls-r34-fold-0:" in line and "outputs checked" in line for line in said)
    said.clear()
    assert dress_rehearsal.main(tmp_path, ["rehearse-r0-train-cls-r34-fold-0"], fixed, data,
                                wheels_from=local_wheels, echo=said.append) == 0
    assert any("done before" in line and "not run again" in line for line in said), said
