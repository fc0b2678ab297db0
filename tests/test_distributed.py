"""Training on several processes (Kaggle's 2 x T4), on the CPU with gloo: DDP for every encoder, the
recipe's effective batch and schedule whatever the number of processes, each rank's own random streams,
resume across world sizes, and the notebook's torchrun launcher."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from steelkit import checkpoint, distributed, launch, models, paths, train
from steelkit.augment import train_augment
from steelkit.datasets import Sample, SteelDataset
from steelkit.losses import build_loss
from steelkit.models import build_model, freeze_unused
from steelkit.recipe import Recipe, override, preset

ROOT = Path(__file__).resolve().parents[1]
TINY = ["epochs=2", "n_folds=3", "batch_size=4", "effective_batch=8"]


def test_efficientnet_modules_that_forward_never_uses_are_frozen():
    model = build_model(override(preset("seg-tiny"), ["encoder=efficientnet-b0"]))
    unused = freeze_unused(model)
    assert unused and {name.split(".")[1] for name in unused} == {"_conv_head", "_bn1"}
    assert not any(p.requires_grad for n, p in model.named_parameters() if n in unused)
    assert freeze_unused(build_model(preset("seg-tiny"))) == []


def test_two_processes_train_an_efficientnet_and_the_checkpoint_predicts(mini, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "steelkit", "train", "--preset", "seg-tiny", "--data", str(mini),
                           "--out", str(tmp_path / "ddp"), "--device", "cpu", "--set", "encoder=efficientnet-b0",
                           "--set", "decoder_channels=16,16,16,16,8", *[a for t in TINY for a in ("--set", t)]],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = checkpoint.load_state(tmp_path / "ddp" / "last.pt")
    assert state["epoch"] == 1 and state["world_size"] == 2
    assert not any(k.startswith("module.") for k in state["model"])
    oof = np.load(tmp_path / "ddp" / "oof.npz")  # the final pass over both ranks' shares, gathered in order
    assert len(oof["seg_tables"]) == len(oof["truth_px"]) == len(oof["seg_probs"]) == len(oof["image_ids"])
    model, recipe = models.load_model(tmp_path / "ddp")
    assert recipe.encoder == "efficientnet-b0"
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 320)).shape == (1, 4, 64, 320)


def test_the_effective_batch_is_the_recipes_whatever_the_world_size():
    recipe = override(preset("seg-fpn-effb3"), [])  # batch 12, effective 24
    assert train.accumulation_steps(recipe, 1) == 2 and train.accumulation_steps(recipe, 2) == 1
    with pytest.raises(ValueError, match=r"effective_batch 24 is not a multiple of batch_size 12 x 3 processes"):
        train.accumulation_steps(recipe, 3)


def test_the_schedule_per_step_is_the_same_with_one_and_two_processes(mini):
    recipe = override(preset("seg-tiny"), TINY)
    dataset = list(range(16))
    rates = {}
    for world in (1, 2):
        context = distributed.Context(rank=0, world_size=world)
        steps = train.steps_in(len(train.make_loader(dataset, recipe, context, True)),
                               train.accumulation_steps(recipe, world))
        rates[world] = [train.learning_rate(recipe, e, s, steps) for e in range(recipe.epochs) for s in range(steps)]
    assert len(rates[1]) == 4 and rates[1] == rates[2]


def _one_step(rank: int, world: int, init: str, images, labels, out: str) -> None:
    """One optimiser step of a batch-norm-free classifier over 8 samples shared by ``world`` ranks."""
    if world > 1:
        dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    recipe = Recipe(stage="classifier", arch="Classifier", pos_weight=(), optimizer="sgd", momentum=0.0, lr=0.1,
                    batch_size=2, effective_batch=8, warmup_epochs=0, min_lr_ratio=1.0, grad_clip=0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 4))
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    mine = range(rank * 8 // world, (rank + 1) * 8 // world)
    batches = [{"image": images[i:i + 2], "labels": labels[i:i + 2]} for i in mine[::2]]
    context = distributed.Context(rank=rank, world_size=world)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    done = train.train_one_epoch(net, batches, build_loss(recipe), optimizer, scaler, recipe, context, 0, 1, "t")
    assert done["steps"] == 1
    if rank == 0:
        torch.save(model.state_dict(), out)
    if world > 1:
        dist.destroy_process_group()


def test_gradients_of_two_processes_equal_one_process_over_the_same_samples(tmp_path):
    torch.manual_seed(1)
    images, labels = torch.randint(0, 256, (8, 16, 16, 3), dtype=torch.uint8), (torch.rand(8, 4) > 0.5).to(torch.uint8)
    _one_step(0, 1, "", images, labels, str(tmp_path / "one.pt"))
    mp.spawn(_one_step, args=(2, f"file://{tmp_path / 'rendezvous'}", images, labels, str(tmp_path / "two.pt")),
             nprocs=2)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("workers", [0, 2])
def test_each_rank_draws_its_own_augmentations_reproducibly(mini, workers):
    recipe = override(preset("seg-tiny"), [f"num_workers={workers}", "batch_size=4", "blackout=0.5",
                                           "brightness_contrast=0.5"])
    image = sorted((mini / "train_images").iterdir())[0]
    dataset = SteelDataset([Sample(image, ("", "", "", ""))] * 8, (64, 320), train_augment(recipe, (64, 320)),
                           seed=recipe.seed)

    def first_batch(rank: int, epoch: int = 0) -> torch.Tensor:
        loader = train.make_loader(dataset, recipe, distributed.Context(rank=rank, world_size=2), train=True)
        loader.sampler.set_epoch(epoch)
        return next(iter(loader))["image"]

    ranks = [first_batch(0), first_batch(1)]
    assert not torch.equal(ranks[0], ranks[1]), "the same image, augmented alike on both ranks"
    assert not torch.equal(first_batch(0, epoch=1), ranks[0]), "the same crops in two epochs"
    torch.testing.assert_close(first_batch(0), ranks[0], rtol=0, atol=0)
    torch.testing.assert_close(first_batch(1), ranks[1], rtol=0, atol=0)


def _schedule(folder: Path) -> list:
    metrics = pd.read_csv(folder / "metrics.csv")
    return list(zip(metrics["epoch"], metrics["steps"], metrics["lr"].round(10)))


def test_resume_across_world_sizes_keeps_the_schedule_and_the_notebook_launches_torchrun(mini, tmp_path,
                                                                                        monkeypatch):
    recipe = override(preset("seg-tiny"), TINY)
    train.train(recipe, mini, tmp_path / "whole", device="cpu")
    whole = _schedule(tmp_path / "whole")

    # 2 processes, started as a notebook does (two simulated devices), then 1 process
    inputs, working = tmp_path / "input", tmp_path / "working"
    inputs.mkdir()
    (inputs / paths.COMPETITION_SLUG).symlink_to(mini)
    monkeypatch.setenv(paths.INPUT_ENV, str(inputs))
    monkeypatch.setenv(paths.WORKING_ENV, str(working))
    lines = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
    first = launch.train_in_kernel("seg-tiny", 0, TINY[1:] + ["epochs=2"], epochs_now=1, gpus=2, device="cpu")
    monkeypatch.undo()
    out = working / "seg-tiny-fold0"
    assert first["out"] == out and first["epochs_done"] == 1 and len(first["metrics"]) == 1
    assert any("torchrun" in line for line in lines) and any("epoch 1/2" in line for line in lines)
    assert checkpoint.load_state(out / "last.pt")["world_size"] == 2
    outputs = {p.name for p in out.iterdir()}
    assert {"recipe.json", "best.pt", "last.pt", "metrics.csv", "oof.npz", "folds.csv"} <= outputs
    train.train(recipe, mini, out, resume=True, device="cpu")
    assert _schedule(out) == whole

    # 1 process, then 2
    train.train(recipe, mini, tmp_path / "one-two", epochs_now=1, device="cpu")
    launch.run_distributed(recipe, mini, tmp_path / "one-two", 2, resume=True, device="cpu", echo=lambda line: None)
    assert _schedule(tmp_path / "one-two") == whole
    assert checkpoint.load_state(tmp_path / "one-two" / "last.pt")["world_size"] == 2


def test_a_launch_that_fails_fails_loudly_quoting_torchrun(mini, tmp_path):
    recipe = override(preset("seg-tiny"), ["batch_size=4", "effective_batch=4"])  # 4 is not 4 x 2 processes
    with pytest.raises(launch.LaunchError, match="(?s)training with 2 processes failed.*effective_batch 4"):
        launch.run_distributed(recipe, mini, tmp_path / "out", 2, device="cpu", echo=lambda line: None)


def test_a_last_checkpoint_with_two_cuda_rng_states_resumes_on_a_cpu_only_machine(mini, tmp_path):
    recipe = override(preset("seg-tiny"), TINY)
    train.train(recipe, mini, tmp_path, epochs_now=1, device="cpu")
    state = checkpoint.load_state(tmp_path / "last.pt")
    state["rng"] = {"cuda": [torch.zeros(16, dtype=torch.uint8), torch.ones(16, dtype=torch.uint8)]}
    checkpoint.save(tmp_path / "last.pt", state)
    assert train.train(recipe, mini, tmp_path, resume=True, device="cpu")["epochs_done"] == 2
    np.testing.assert_equal(len(pd.read_csv(tmp_path / "metrics.csv")), 2)
