import dataclasses
import json

import pytest

from steelkit import recipe as recipes
from steelkit.recipe import Recipe, override, preset


def test_presets_follow_the_seed():
    assert recipes.preset("cls-effb1").effective_batch == 32
    assert recipes.preset("cls-r34").batch_size == 16 and recipes.preset("cls-r34").effective_batch == 32
    assert recipes.preset("cls-effb1").optimizer == "sgd"
    for name in ("seg-unet-effb3", "seg-fpn-effb3", "seg-fpn-effb3-dice"):
        seg = recipes.preset(name)
        assert (seg.encoder, seg.optimizer, seg.effective_batch) == ("efficientnet-b3", "radam", 24)
        assert seg.pos_weight == (2.0, 2.0, 1.0, 1.5) and (seg.crop_height, seg.crop_width) == (256, 512)
    assert recipes.preset("seg-fpn-effb3-dice").loss == "bce_dice"
    assert recipes.preset("cls-effb1").blackout > 0


def test_unknown_preset_lists_the_names():
    with pytest.raises(KeyError, match="cls-effb1, cls-r34"):
        recipes.preset("cls-b7")


def test_overrides_are_parsed_by_type_and_round_trip_through_json(tmp_path):
    recipe = recipes.override(recipes.preset("seg-tiny"), ["epochs=3", "lr=0.5", "amp=false", "pos_weight=1,2,3,4",
                                                           "encoder_weights=/w.pth", "decoder-channels=8,8,8,8,8"])
    assert (recipe.epochs, recipe.lr, recipe.amp, recipe.pos_weight) == (3, 0.5, False, (1.0, 2.0, 3.0, 4.0))
    assert recipe.decoder_channels == (8, 8, 8, 8, 8)
    recipe.save(tmp_path / "recipe.json")
    assert recipes.Recipe.load(tmp_path / "recipe.json") == recipe


@pytest.mark.parametrize("assignment, message", [
    ("epoch=3", "key one of"), ("epochs=three", "epochs=three"), ("amp=maybe", "not a boolean"), ("lr", "key=value"),
])
def test_bad_overrides_name_themselves(assignment, message):
    with pytest.raises(ValueError, match=message):
        recipes.override(recipes.preset("seg-tiny"), [assignment])


@pytest.mark.parametrize("changes, message", [
    ({"effective_batch": 10, "batch_size": 4}, "multiple of batch_size"), ({"loss": "focal"}, "loss 'focal'"),
    ({"fold": 5}, "fold 5"), ({"stage": "detector"}, "stage"),
])
def test_recipes_are_checked_at_construction(changes, message):
    with pytest.raises(ValueError, match=message):
        recipes.Recipe(**changes)


def test_the_recipe_records_what_shapes_the_model_and_a_recipe_written_before_still_loads(tmp_path):
    import torch

    from steelkit.augment import train_augment
    from steelkit.models import build_model
    from steelkit.train import build_optimizer

    old = {k: v for k, v in dataclasses.asdict(preset("cls-tiny")).items()
           if k not in ("nesterov", "head_dropout", "head_prior", "brightness_contrast_limit")}
    (tmp_path / "recipe.json").write_text(json.dumps(old))
    loaded = Recipe.load(tmp_path / "recipe.json")  # a recipe.json of before these fields: today's values
    assert (loaded.nesterov, loaded.head_dropout, loaded.head_prior, loaded.brightness_contrast_limit) == \
        (True, 0.2, 0.1, 0.2)
    assert preset("seg-tiny").head_prior == 0.01
    assert json.loads(loaded.to_json())["head_prior"] == 0.1, "a saved recipe holds the value it used"

    changed = override(preset("cls-tiny"), ["nesterov=false", "head_dropout=0.5", "head_prior=0.3",
                                            "brightness_contrast_limit=0.1", "optimizer=sgd"])
    model = build_model(changed, load_weights=False)
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.5]
    last = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.testing.assert_close(last.bias, torch.full((4,), float(torch.logit(torch.tensor(0.3)))))
    assert build_optimizer(model, changed).param_groups[0]["nesterov"] is False
    assert build_optimizer(model, preset("cls-effb1")).param_groups[0]["nesterov"] is True
    assert train_augment(changed, (64, 400)).limit == 0.1
    with pytest.raises(ValueError, match="head_prior 1.5"):
        override(preset("cls-tiny"), ["head_prior=1.5"])
