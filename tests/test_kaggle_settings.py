"""kernels/kernels.json as a matrix: what it expands to, and what Kaggle would reject caught before a build."""

import json

import pytest

from steelkit_kaggle import settings

CONFIG = settings.load()


def _slugs(config=CONFIG):
    return [k["slug"] for k in config["kernels"]]


def test_the_matrix_expands_to_todays_kernels_and_the_seeds_ensemble():
    slugs = _slugs()
    for preset, folds in (("cls-effb1", 3), ("cls-r34", 1), ("seg-unet-effb3", 1), ("seg-fpn-effb3", 5),
                          ("seg-fpn-effb3-dice", 3)):
        assert [s for s in slugs if s.startswith(f"steelkit-train-{preset}-fold-")] == \
            [f"steelkit-train-{preset}-fold-{k}" for k in range(folds)]
    kernel = settings.find(CONFIG, "steelkit-train-cls-effb1-fold-2")
    assert kernel["title"] == "steelkit train cls-effb1 fold 2" and kernel["gpu"]
    assert kernel["parameters"] == {"PRESET": "cls-effb1", "FOLD": 2,
                                    "ENCODER_WEIGHTS": "steelkit-encoder-weights/efficientnet-b1.safetensors"}
    dice = settings.find(CONFIG, "steelkit-train-seg-fpn-effb3-dice-fold-1")
    assert dice["kernels"] == ["{user}/steelkit-train-seg-fpn-effb3-fold-1"]
    submission = settings.find(CONFIG, "steelkit-submission")
    presets = settings.ensemble_presets(CONFIG, submission)
    segmenters = [p for p in presets if p.startswith("seg-")]
    assert sorted(segmenters) == ["seg-fpn-effb3", "seg-fpn-effb3", "seg-fpn-effb3-dice", "seg-fpn-effb3-dice",
                                  "seg-fpn-effb3-dice", "seg-unet-effb3"], "1 Unet, 3 FPN fine-tuned, 2 FPN (BCE)"
    assert sorted(p for p in presets if p.startswith("cls-")) == ["cls-effb1"] * 3 + ["cls-r34"]
    assert "steelkit-demo-submission-round-2" in slugs and len(slugs) == len(set(slugs)) == 20


def test_adding_a_fold_is_one_number(tmp_path):
    raw = json.loads(settings.SETTINGS.read_text())
    raw["groups"][0]["folds"].append(3)
    (tmp_path / "k.json").write_text(json.dumps(raw))
    config = settings.load(tmp_path / "k.json")
    assert "steelkit-train-cls-effb1-fold-3" in _slugs(config)
    assert "{user}/steelkit-train-cls-effb1-fold-3" in settings.find(config, "steelkit-submission")["kernels"]


def test_push_order_puts_every_kernel_after_what_it_attaches():
    order = [k["slug"] for k in settings.push_order(CONFIG, CONFIG["kernels"][::-1])]
    for kernel in CONFIG["kernels"]:
        for source in settings.dependencies(CONFIG, kernel):
            assert order.index(source["slug"]) < order.index(kernel["slug"]), (source["slug"], kernel["slug"])


@pytest.mark.parametrize("change, message", [
    (lambda g: g.update(title="steelkit train {preset} fold {fold} with a title far too long"),
     "Kaggle accepts 5 to 50"),
    (lambda g: g.pop("title"), "has no title"),
    (lambda g: g.update(source="nope.py"), "source file .*nope.py not found"),
    (lambda g: g.update(title="steelkit train {preset}"), "give the same slug 'steelkit-train-cls-effb1'"),
    (lambda g: g.update(kernels=["{user}/steelkit-nothing-like-it"]), "attaches {user}/steelkit-nothing-like-it"),
])
def test_what_kaggle_would_reject_fails_before_anything_is_built(tmp_path, change, message):
    raw = json.loads(settings.SETTINGS.read_text())
    change(raw["groups"][0])
    (tmp_path / "k.json").write_text(json.dumps(raw))
    with pytest.raises(settings.SettingsError, match=message):
        settings.load(tmp_path / "k.json")
