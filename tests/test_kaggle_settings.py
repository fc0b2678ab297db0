"""kernels/kernels.json as a matrix: what it expands to, and what Kaggle would reject caught before a build."""

import json

import pytest

from steelkit_kaggle import settings

CONFIG = settings.load()


def _slugs(config=CONFIG):
    return [k["slug"] for k in config["kernels"]]


def test_the_matrix_expands_to_three_rounds_of_the_seeds_ensemble():
    slugs = _slugs()
    for preset, folds in (("cls-effb1", [0, 1, 2]), ("cls-r34", [0]), ("seg-unet-effb3", [0]),
                          ("seg-fpn-effb3", [0, 1, 2, 3, 4]), ("seg-fpn-effb3-dice", [0, 1, 2])):
        assert [s for s in slugs if s.startswith(f"steelkit-r0-train-{preset}-fold-")] == \
            [f"steelkit-r0-train-{preset}-fold-{k}" for k in folds]
    assert len([s for s in slugs if s.startswith("steelkit-r0-train-")]) == 13, "the seed's 13 trainings"
    kernel = settings.find(CONFIG, "steelkit-r0-train-cls-effb1-fold-2")
    assert kernel["title"] == "steelkit r0 train cls-effb1 fold 2" and kernel["gpu"] and kernel["round"] == 0
    assert kernel["parameters"] == {"PRESET": "cls-effb1", "FOLD": 2,
                                    "ENCODER_WEIGHTS": "steelkit-encoder-weights/efficientnet-b1.safetensors"}
    dice = settings.find(CONFIG, "steelkit-r0-train-seg-fpn-effb3-dice-fold-1")
    assert dice["kernels"] == ["{user}/steelkit-r0-train-seg-fpn-effb3-fold-1"]
    final = settings.find(CONFIG, "steelkit-r2-submission")
    presets = settings.ensemble_presets(CONFIG, final)
    segmenters = [p for p in presets if p.startswith("seg-")]
    assert sorted(segmenters) == ["seg-fpn-effb3", "seg-fpn-effb3", "seg-fpn-effb3-dice", "seg-fpn-effb3-dice",
                                  "seg-fpn-effb3-dice", "seg-unet-effb3"], "1 Unet, 3 FPN fine-tuned, 2 FPN (BCE)"
    assert sorted(p for p in presets if p.startswith("cls-")) == ["cls-effb1"] * 3 + ["cls-r34"]
    assert all(s.split("/")[-1].startswith(("steelkit-r2-train-", "steelkit-r2-tune")) for s in final["kernels"])
    assert final["parameters"]["PSEUDO_ROUND"] == 0, "the final submission writes no labels"
    assert "steelkit-r2-submission" in slugs and len(slugs) == len(set(slugs))
    for kernel in CONFIG["kernels"]:
        assert 5 <= len(kernel["title"]) <= 50


def test_each_round_trains_on_the_previous_rounds_pseudo_labels_and_its_submission_on_its_tuning():
    for number in (0, 1, 2):
        submission = settings.find(CONFIG, f"steelkit-r{number}-submission")
        tune = f"steelkit-r{number}-tune-thresholds"
        assert f"{{user}}/{tune}" in submission["kernels"]
        assert submission["parameters"]["INFERENCE_CONFIG"] == f"{tune}/inference.json"
        assert submission["parameters"]["PSEUDO_ROUND"] == (number + 1 if number < 2 else 0)
        assert settings.outputs(submission) == ["submission.csv"] + (["pseudo.csv"] if number < 2 else [])
        tuning = settings.find(CONFIG, tune)
        assert tuning["gpu"] and sorted(tuning["kernels"]) == sorted(
            s for s in submission["kernels"] if "tune" not in s)
    for number in (1, 2):
        trainings = [k for k in CONFIG["kernels"] if k.get("round") == number and k["source"].startswith("train_")]
        assert len(trainings) == 10  # the FPN folds 0-2 only start the fine-tuned FPNs, in round 0
        for kernel in trainings:
            pseudo = f"steelkit-r{number - 1}-submission"
            assert kernel["parameters"]["PSEUDO_LABELS"] == f"{pseudo}/pseudo.csv"
            assert f"{{user}}/{pseudo}" in kernel["kernels"]
            previous = kernel["slug"].replace(f"steelkit-r{number}-", f"steelkit-r{number - 1}-")
            assert kernel["parameters"]["INIT_FROM"] == f"{previous}/{kernel['preset']}-fold{kernel['fold']}"
            assert kernel["parameters"]["OVERRIDES"][-1].startswith("epochs=")


def test_later_rounds_from_scratch_build_too(tmp_path):
    raw = json.loads(settings.SETTINGS.read_text())
    later = next(g["later_rounds"] for g in raw["groups"] if "later_rounds" in g)
    for group in raw["groups"]:
        if group.get("presets") == ["seg-fpn-effb3"] and group["rounds"] == [0]:
            group.update(rounds=[0, 1, 2], later_rounds=later)  # from scratch, the fine-tuned FPN needs its start
        if "later_rounds" in group:
            group["later_rounds"] = {**group["later_rounds"], "mode": "scratch"}
    (tmp_path / "k.json").write_text(json.dumps(raw))
    config = settings.load(tmp_path / "k.json")
    dice = settings.find(config, "steelkit-r1-train-seg-fpn-effb3-dice-fold-0")
    assert dice["parameters"]["INIT_FROM"] == "steelkit-r1-train-seg-fpn-effb3-fold-0/seg-fpn-effb3-fold0"
    assert "OVERRIDES" not in dice["parameters"] and "{user}/steelkit-r0-submission" in dice["kernels"]


def test_a_round_that_attaches_a_round_that_does_not_exist_is_named(tmp_path):
    raw = json.loads(settings.SETTINGS.read_text())
    raw["groups"][0]["rounds"] = [1, 2]  # round 1 fine-tunes round 0's model, which is no longer there
    (tmp_path / "k.json").write_text(json.dumps(raw))
    with pytest.raises(settings.SettingsError, match=r"\(round 1\) fine-tunes from 'steelkit-r0-train-cls-effb1-fold-0'"
                                                     r".*defines no such kernel"):
        settings.load(tmp_path / "k.json")


def _load_changed(tmp_path, change):
    raw = json.loads(settings.SETTINGS.read_text())
    change(raw["groups"])
    (tmp_path / "k.json").write_text(json.dumps(raw))
    return settings.load(tmp_path / "k.json")


def _tuning(groups):
    return next(g for g in groups if g["source"] == "tune.py")


def test_a_tuning_kernel_whose_classifiers_miss_its_segmenters_folds_is_refused(tmp_path):
    config = _load_changed(tmp_path, lambda groups: None)
    tuning = settings.find(config, "steelkit-r0-tune-thresholds")
    assert settings.gate_folds(config["kernels"], tuning) == [0, 1, 2], "kernels.json tunes the gate on folds 0-2"
    with pytest.raises(settings.SettingsError, match=r"tune thresholds' \(round 0\): its segmenters hold out folds "
                                                     r"\[0, 1, 2, 3, 4\], its classifiers only \[0, 1, 2\]"):
        _load_changed(tmp_path, lambda groups: _tuning(groups).pop("gate"))
    with pytest.raises(settings.SettingsError, match="no image has both, so the class gate cannot be tuned"):
        _load_changed(tmp_path, lambda groups: _tuning(groups).update(
            models=[{"preset": "cls-effb1"}, {"preset": "seg-fpn-effb3", "folds": [3, 4]}]))


def test_an_attachment_to_a_kernel_that_comes_later_is_refused(tmp_path):
    with pytest.raises(settings.SettingsError, match=r"r0 train cls-effb1 fold 0' \(round 0\) attaches "
                                                     r"steelkit-r1-submission, which comes after it"):
        _load_changed(tmp_path, lambda groups: groups[0].update(kernels=["{user}/steelkit-r1-submission"]))


def test_a_later_round_that_fine_tunes_from_another_preset_is_refused(tmp_path):
    def change(groups):  # round 1 of cls-r34 fine-tunes from the previous round's kernel, which it renames
        groups[1]["later_rounds"] = {**groups[1]["later_rounds"], "mode": "finetune"}
        groups[1]["title"] = "steelkit r{round} train {preset} fold {fold} x"
        groups[1]["kernels"] = []
    config = _load_changed(tmp_path, change)
    kernel = settings.find(config, "steelkit r1 train cls-r34 fold 0 x")
    kernel["parameters"]["INIT_FROM"] = "steelkit-r0-train-cls-effb1-fold-0/cls-effb1-fold0"
    with pytest.raises(settings.SettingsError, match="fine-tunes from 'steelkit-r0-train-cls-effb1-fold-0', which is "
                                                     "not a round 0 kernel of cls-r34 fold 0"):
        settings.check_matrix(config["kernels"])


def test_a_path_parameter_under_an_input_not_attached_is_refused(tmp_path):
    with pytest.raises(settings.SettingsError, match="INFERENCE_CONFIG 'steelkit-r9-tune/inference.json' is under "
                                                     "'steelkit-r9-tune', which the kernel does not attach"):
        _load_changed(tmp_path, lambda groups: next(g for g in groups if g["source"] == "submission.py")[
            "parameters"].update(INFERENCE_CONFIG="steelkit-r9-tune/inference.json"))


def test_a_kernel_in_parts_chains_them_and_the_rest_attach_the_last(tmp_path):
    raw = json.loads(settings.SETTINGS.read_text())
    raw["groups"][0]["parts"] = [10, 10, 10]
    (tmp_path / "k.json").write_text(json.dumps(raw))
    config = settings.load(tmp_path / "k.json")
    first, second, third = (settings.find(config, f"steelkit-r0-train-cls-effb1-fold-0{s}")
                            for s in ("", "-part-2", "-part-3"))
    assert first["parameters"]["EPOCHS_NOW"] == 10 and third["parameters"]["EPOCHS_NOW"] is None
    assert second["parameters"]["RESUME_FROM"] == first["slug"] and "{user}/" + first["slug"] in second["kernels"]
    assert third["parameters"]["RESUME_FROM"] == second["slug"] and third["title"].endswith("part 3")
    assert settings.outputs(first) == [f"cls-effb1-fold0/{n}" for n in ("recipe.json", "last.pt", "metrics.csv",
                                                                     "run.json")]
    assert "cls-effb1-fold0/oof.npz" in settings.outputs(third)
    tuning = settings.find(config, "steelkit-r0-tune-thresholds")
    assert "{user}/" + third["slug"] in tuning["kernels"] and "{user}/" + first["slug"] not in tuning["kernels"]
    later = settings.find(config, "steelkit-r1-train-cls-effb1-fold-0")
    assert later["parameters"]["INIT_FROM"] == f"{third['slug']}/cls-effb1-fold0"


def test_adding_a_fold_is_one_number(tmp_path):
    raw = json.loads(settings.SETTINGS.read_text())
    raw["groups"][0]["folds"].append(3)
    (tmp_path / "k.json").write_text(json.dumps(raw))
    config = settings.load(tmp_path / "k.json")
    assert "steelkit-r0-train-cls-effb1-fold-3" in _slugs(config)
    assert "{user}/steelkit-r0-train-cls-effb1-fold-3" in settings.find(config, "steelkit-r0-submission")["kernels"]


def test_push_order_puts_every_kernel_after_what_it_attaches():
    order = [k["slug"] for k in settings.push_order(CONFIG, CONFIG["kernels"][::-1])]
    for kernel in CONFIG["kernels"]:
        for source in settings.dependencies(CONFIG, kernel):
            assert order.index(source["slug"]) < order.index(kernel["slug"]), (source["slug"], kernel["slug"])


@pytest.mark.parametrize("change, message", [
    (lambda g: g.update(title="steelkit r{round} train {preset} fold {fold} a title far too long"),
     "Kaggle accepts 5 to 50"),
    (lambda g: g.pop("title"), "has no title"),
    (lambda g: g.update(source="nope.py"), "source file .*nope.py not found"),
    (lambda g: g.update(title="steelkit r{round} train {preset}"), "give the same slug 'steelkit-r0-train-cls-effb1'"),
    (lambda g: g.update(kernels=["{user}/steelkit-nothing-like-it"]), "attaches {user}/steelkit-nothing-like-it"),
])
def test_what_kaggle_would_reject_fails_before_anything_is_built(tmp_path, change, message):
    raw = json.loads(settings.SETTINGS.read_text())
    change(raw["groups"][0])
    (tmp_path / "k.json").write_text(json.dumps(raw))
    with pytest.raises(settings.SettingsError, match=message):
        settings.load(tmp_path / "k.json")
