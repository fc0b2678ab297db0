import pytest

from steelkit import recipe as recipes


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
