"""Validation scores, and validation spread over ranks giving exactly one process's scores."""

import numpy as np
import torch

from steelkit import validation
from steelkit.competition import read_labels
from steelkit.datasets import SteelDataset, samples_from_table
from steelkit.losses import build_loss
from steelkit.models import build_model
from steelkit.recipe import override, preset


def test_classifier_scores_by_hand():
    probs = np.array([[0.9, 0.1, 0.2, 0.1], [0.2, 0.1, 0.8, 0.1]])
    truth = np.array([[True, False, False, False], [False, False, False, True]])
    scores = validation.classifier_scores(probs, truth)
    assert scores["score"] == 6 / 8  # two wrong calls of eight
    assert scores["f1_1"] == 1.0 and scores["f1_3"] == 0.0 and scores["f1_2"] == 1.0
    assert scores["acc_4"] == 0.5


def test_shards_are_whole_batches_covering_every_item_once():
    items = list(range(23))
    for world in (1, 2, 3):
        shards = [validation.shard(items, 4, rank, world) for rank in range(world)]
        assert [i for s in shards for i in s] == items
        assert all(len(s) % 4 == 0 for s in shards[:-1] if len(s))


def test_validation_spread_over_ranks_equals_one_process(mini):
    recipe = override(preset("seg-tiny"), ["val_batch_size=3"])
    table = read_labels(mini / "train.csv", mini / "train_images").head(11)
    dataset = SteelDataset(samples_from_table(table, mini / "train_images"), (64, 320))
    torch.manual_seed(0)
    model, loss_fn = build_model(recipe), build_loss(recipe)
    loader = lambda d: torch.utils.data.DataLoader(d, batch_size=3)  # noqa: E731
    whole = validation.scores_and_oof(validation.validation_parts(model, loader(dataset), loss_fn, recipe,
                                                                  torch.device("cpu")), recipe.stage)
    parts = [validation.validation_parts(model, loader(validation.shard(dataset, 3, rank, 2)), loss_fn, recipe,
                                         torch.device("cpu")) for rank in range(2)]
    assert sum(parts[1]["count"]) == 5  # rank 1 validated its share: the last 2 of 4 batches (5 images)
    spread = validation.scores_and_oof(validation.merge(parts), recipe.stage)
    assert spread["scores"] == whole["scores"]
    np.testing.assert_array_equal(spread["oof"]["seg_probs"], whole["oof"]["seg_probs"])
