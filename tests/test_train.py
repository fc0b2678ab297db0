"""The training loop on tiny synthetic data, on the CPU."""

import numpy as np
import pandas as pd
import pytest
import torch

from steelkit import checkpoint, launch, models, synthetic, train
from steelkit.recipe import Recipe, override, preset


def test_accumulated_gradients_equal_one_big_batch():
    recipe = Recipe(stage="classifier", arch="Classifier", encoder="resnet18", pos_weight=(), batch_size=2,
                    effective_batch=6, grad_clip=0)
    torch.manual_seed(0)
    model = train.build_model(recipe).eval()  # eval: batch norm would make batch size matter
    loss_fn = train.build_loss(recipe)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    images, labels = torch.randint(0, 256, (6, 64, 64, 1), dtype=torch.uint8), (torch.rand(6, 4) > 0.5).float()

    for start in range(0, 6, 2):  # three micro-batches of 2, each loss divided by 3
        train.backward_step(model, {"image": images[start:start + 2], "labels": labels[start:start + 2]},
                            loss_fn, scaler, recipe, torch.device("cpu"), train.accumulation_steps(recipe))
    accumulated = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    train.backward_step(model, {"image": images, "labels": labels}, loss_fn, scaler,
                        override(recipe, ["batch_size=6"]), torch.device("cpu"), 1)
    for name, param in model.named_parameters():
        torch.testing.assert_close(accumulated[name], param.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_learning_rate_warms_up_then_decays():
    factors = [train.lr_factor(step, 4, 20, 0.01) for step in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[4:], factors[5:])) and factors[-1] == pytest.approx(0.01, abs=0.01)


def _tiny(stage_preset: str, **changes) -> Recipe:
    return override(preset(stage_preset), [f"{k}={v}" for k, v in changes.items()])


def test_resume_ends_with_the_same_weights(mini, tmp_path):
    recipe = _tiny("seg-tiny", epochs=2, n_folds=3, batch_size=4, effective_batch=8, blackout=0.5)
    train.train(recipe, mini, tmp_path / "whole", device="cpu")
    first = train.train(recipe, mini, tmp_path / "split", epochs_now=1, device="cpu")
    assert first["epochs_done"] == 1 and len(pd.read_csv(tmp_path / "split" / "metrics.csv")) == 1
    stopped = checkpoint.read_run(tmp_path / "split")
    assert (stopped["finished"], stopped["epochs_done"], stopped["epochs"]) == (False, 1, 2)
    assert "stopped after epoch 1 of 2 (epochs_now 1" in stopped["stopped"]
    assert checkpoint.read_run(tmp_path / "whole") == {"finished": True, "epochs_done": 2, "epochs": 2, "stopped": ""}
    with pytest.raises(FileExistsError, match="--resume"):
        train.train(recipe, mini, tmp_path / "split", device="cpu")
    train.train(recipe, mini, tmp_path / "split", resume=True, device="cpu")
    whole = checkpoint.load_state(tmp_path / "whole" / "last.pt")
    split = checkpoint.load_state(tmp_path / "split" / "last.pt")
    assert whole["epoch"] == split["epoch"] == 1
    for key, value in whole["model"].items():
        torch.testing.assert_close(split["model"][key], value, rtol=0, atol=0, msg=key)
    assert pd.read_csv(tmp_path / "split" / "metrics.csv")["train_loss"].tolist() == \
        pytest.approx(pd.read_csv(tmp_path / "whole" / "metrics.csv")["train_loss"].tolist())
    assert checkpoint.read_run(tmp_path / "split")["finished"], "the resumed run says it finished"


def test_a_diverging_run_stops_with_a_clear_error_and_saves_no_weights_of_nans(mini, tmp_path, capsys):
    from steelkit import cli

    args = ["train", "--preset", "seg-tiny", "--data", str(mini), "--out", str(tmp_path / "nan"), "--device", "cpu",
            "--set", "lr=1e30", "--set", "grad_clip=0", "--set", "epochs=2", "--set", "n_folds=3",
            "--set", "batch_size=4", "--set", "effective_batch=4"]
    assert cli.main(args) == 2
    said = capsys.readouterr().err
    assert "seg-tiny fold 0: training diverged in epoch 1, step" in said and "lr 1e+30, no gradient clipping" in said
    assert "no epoch was finite" in said and "Traceback" not in said
    assert not (tmp_path / "nan" / "best.pt").exists() and not (tmp_path / "nan" / "last.pt").exists()


def test_a_non_finite_validation_loss_stops_the_run_and_is_never_the_best_epoch(mini, tmp_path, monkeypatch):
    from steelkit import validation

    real, calls = validation.scores_and_oof, []

    def dead_in_epoch_two(merged, stage):
        result = real(merged, stage)
        calls.append(stage)
        if len(calls) == 2:  # a model whose outputs went NaN: its all-empty masks score well, its loss is NaN
            result["scores"].update(val_loss=float("nan"), score=1.0)
        return result

    monkeypatch.setattr(validation, "scores_and_oof", dead_in_epoch_two)
    recipe = _tiny("seg-tiny", epochs=3, n_folds=3, batch_size=4, effective_batch=4)
    with pytest.raises(train.Diverged, match=r"epoch 2, step \d+: validation loss nan.*last.pt holds epoch 1"):
        train.train(recipe, mini, tmp_path, device="cpu")
    assert checkpoint.load_state(tmp_path / "best.pt")["epoch"] == 0, "the dead epoch never became the best"
    assert checkpoint.load_state(tmp_path / "last.pt")["epoch"] == 0
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1


def test_a_checkpoint_of_non_finite_weights_is_never_loaded(mini, tmp_path):
    model = models.build_model(_tiny("cls-tiny"), load_weights=False)
    state = model.state_dict()
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    checkpoint.save(tmp_path / "best.pt", {"model": state, "recipe": {}})
    with pytest.raises(ValueError, match=r"best.pt: 1 of \d+ weight tensors are not finite"):
        checkpoint.load_state(tmp_path / "best.pt")


def test_a_last_pt_saved_on_the_cpu_resumes_with_amp_enabled(mini, tmp_path):
    recipe = _tiny("cls-tiny", epochs=1, n_folds=3, batch_size=4, effective_batch=4)
    train.train(recipe, mini, tmp_path / "cpu", device="cpu")
    saved = checkpoint.load_state(tmp_path / "cpu" / "last.pt")["scaler"]
    assert saved == {}, "a disabled scaler (AMP off on the CPU) saves nothing"
    amp = torch.amp.GradScaler("cpu", enabled=True)  # as on CUDA with AMP: an enabled scaler
    with pytest.raises(RuntimeError, match="empty"):
        amp.load_state_dict(saved)  # what resuming did before: torch refuses the empty state
    train.resume_scaler(amp, saved)
    assert amp.get_scale() == torch.amp.GradScaler("cpu", enabled=True).get_scale(), "a fresh scale"
    used = torch.amp.GradScaler("cpu", init_scale=4096.0).state_dict()  # an AMP run's scaler, as CUDA saves it
    disabled = torch.amp.GradScaler("cpu", enabled=False)  # resumed on the CPU: ignored
    train.resume_scaler(disabled, used)
    assert not disabled.is_enabled()
    again = torch.amp.GradScaler("cpu", enabled=True)  # resumed with AMP: its scale kept
    train.resume_scaler(again, used)
    assert again.get_scale() == 4096.0


def test_a_run_with_the_image_cache_equals_one_without_and_so_does_its_submission(mini, tmp_path, capsys,
                                                                                   monkeypatch):
    from steelkit.predict import InferenceConfig, predict

    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    monkeypatch.setenv("STEELKIT_IMAGE_CACHE_DIR", str(cache_dir))

    recipe = _tiny("seg-tiny", epochs=2, n_folds=3, batch_size=4, effective_batch=8)
    train.train(override(recipe, ["image_cache=on"]), mini, tmp_path / "on", device="cpu")
    printed = capsys.readouterr().out
    assert "image cache: on" in printed and "filled in" in printed and "image cache hit rate 100%" in printed
    train.train(override(recipe, ["image_cache=off"]), mini, tmp_path / "off", device="cpu")
    assert "image cache: off (image_cache=off)" in capsys.readouterr().out
    columns = ["epoch", "lr", "steps", "train_loss", "val_loss", "score"]
    on, off = (pd.read_csv(tmp_path / run / "metrics.csv")[columns] for run in ("on", "off"))
    pd.testing.assert_frame_equal(on, off)
    np.testing.assert_array_equal(np.load(tmp_path / "on" / "oof.npz")["seg_probs"],
                                  np.load(tmp_path / "off" / "oof.npz")["seg_probs"])
    config = InferenceConfig(num_workers=0)
    for run in ("on", "off"):
        predict(mini, [], [tmp_path / run / "best.pt"], tmp_path / f"{run}.csv", config, device="cpu")
    assert (tmp_path / "on.csv").read_text() == (tmp_path / "off.csv").read_text()
    assert not list(cache_dir.iterdir()), "a complete run removes its cache"


def test_outputs_say_how_they_were_made(mini, tmp_path):
    recipe = _tiny("cls-tiny", epochs=1, n_folds=3, fold=1)
    train.train(recipe, mini, tmp_path, device="cpu")
    made = override(recipe, [f"folds_file={tmp_path / 'folds.csv'}"])  # the recipe says which folds it used
    assert Recipe.load(tmp_path / "recipe.json") == made
    model, loaded = models.load_model(tmp_path)
    assert loaded == made and not model.training
    oof = np.load(tmp_path / "oof.npz")
    folds = pd.read_csv(tmp_path / "folds.csv")
    assert sorted(oof["image_ids"]) == sorted(folds.loc[folds["fold"] == 1, "ImageId"])
    assert oof["cls_probs"].shape == (len(oof["image_ids"]), 4) and oof["cls_probs"].dtype == np.float32
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert {"epoch", "lr", "train_loss", "val_loss", "score", "f1_3", "acc_1"} <= set(metrics.columns)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "curves drawn beside metrics.csv"


def test_the_curves_are_drawn_at_most_once_a_minute_and_at_the_end(mini, tmp_path, monkeypatch):
    """A drawing costs about half a second: after the first epoch, then not again within CURVES_EVERY, and
    always at the end of the call with every epoch; a call that stops early draws what it has."""
    drawn = []
    monkeypatch.setattr(train, "draw_curves", lambda history, path, title: drawn.append(history["epoch"].tolist()))
    recipe = _tiny("cls-tiny", epochs=3, n_folds=3)
    train.train(recipe, mini, tmp_path / "a", device="cpu")
    assert drawn == [[1], [1, 2, 3]]  # epoch 2 within the minute: not drawn; the end: every epoch
    drawn.clear()
    monkeypatch.setattr(train, "CURVES_EVERY", 0.0)  # epochs longer than the interval: each drawn as it ends
    train.train(recipe, mini, tmp_path / "b", device="cpu", epochs_now=2)
    assert drawn == [[1], [1, 2]]  # stopped early: what it has, and nothing drawn twice


@pytest.mark.parametrize("image_cache", ["on", "off"])
def test_a_bad_training_image_fails_at_start_up_with_its_name(tmp_path, monkeypatch, image_cache):
    monkeypatch.setenv("STEELKIT_IMAGE_CACHE_DIR", str(tmp_path))
    data = synthetic.make(tmp_path / "data", synthetic.SynthConfig(n_train=12, n_test=2, height=64, width=320))
    named = pd.read_csv(data / "train.csv")["ImageId"].unique()  # images train.csv names must exist
    victims = [data / "train_images" / name for name in named[:2]]
    victims[0].write_bytes(b"garbage")
    victims[1].unlink()
    with pytest.raises(ValueError, match="2 of 12 training images") as info:
        train.train(_tiny("seg-tiny", epochs=1, n_folds=3, image_cache=image_cache), data, tmp_path / "out",
                    device="cpu")
    assert victims[0].name in str(info.value) and victims[1].name in str(info.value)
    assert not (tmp_path / "out" / "last.pt").exists()
    assert not list(tmp_path.glob("steelkit-images-*")), "a cache of a run that cannot start is not kept"


def test_pseudo_label_rows_join_the_training_set(mini, tmp_path):
    test_ids = sorted(p.name for p in (mini / "test_images").iterdir())[:2]
    rows = [(image, c, "1 5" if c == 3 else "", 1, "m") for image in test_ids for c in (1, 2, 3, 4)]
    pd.DataFrame(rows, columns=["ImageId", "ClassId", "EncodedPixels", "round", "models"]).to_csv(
        tmp_path / "pseudo.csv", index=False)
    recipe = _tiny("seg-tiny", n_folds=3, pseudo_labels=tmp_path / "pseudo.csv")
    train_rows, valid_rows, _, _ = train.training_rows(recipe, mini, tmp_path)
    pseudo = [s for s in train_rows if s.pseudo]
    assert [s.image_path.name for s in pseudo] == test_ids
    assert all(s.image_path.parent.name == "test_images" and s.rles == ("", "", "1 5", "") for s in pseudo)
    assert not any(s.pseudo for s in valid_rows)


def test_the_segmenter_learns(tmp_path):
    # calmer sheets than the real ones (texture 0.4): a tiny model from scratch on 36 images for 15 epochs
    # does not get past the all-empty score on real-like texture (0.875 against 0.854 measured), here it must
    data = synthetic.make(tmp_path / "data", synthetic.SynthConfig(n_train=48, n_test=8, height=128, width=512,
                                                                   seed=5, texture=0.4))
    recipe = _tiny("seg-tiny", epochs=15, n_folds=4, batch_size=4, effective_batch=4)
    result = train.train(recipe, data, tmp_path / "out", device="cpu")
    history = pd.DataFrame(result["history"])
    folds = pd.read_csv(tmp_path / "out" / "folds.csv")
    from steelkit.competition import presence, read_labels

    table = read_labels(data / "train.csv", data / "train_images").set_index("ImageId")
    valid = table.loc[folds.loc[folds["fold"] == 0, "ImageId"]].reset_index()
    all_empty = float((~presence(valid)).mean())  # the Dice of predicting nothing anywhere
    assert result["best_score"] > all_empty + 0.03, (result["best_score"], all_empty)
    assert history["train_loss"].iloc[-3:].mean() < 0.5 * history["train_loss"].iloc[0]
    oof = np.load(tmp_path / "out" / "oof.npz")
    assert oof["seg_probs"].dtype == np.uint8 and oof["seg_probs"].shape == (len(valid), 4, 128, 512)
    # the final pass: the threshold search's full-resolution tables of the best epoch, in the maps' order
    from steelkit import rle, thresholds

    tables = oof["seg_tables"]
    assert tables.shape == (len(valid), 4, len(thresholds.GRIDS["pixel"]), len(thresholds.GRIDS["min_component"]), 2)
    shape = tuple(int(v) for v in oof["shape"])
    areas = [[int(rle.decode(table.loc[i, f"rle_{k}"], shape).sum()) for k in (1, 2, 3, 4)] for i in oof["image_ids"]]
    assert oof["truth_px"].tolist() == areas
    kept, overlap = tables[..., 0], tables[..., 1]
    assert (overlap <= np.minimum(kept, oof["truth_px"][:, :, None, None])).all()
    assert (np.diff(kept, axis=2) <= 0).all() and (np.diff(kept, axis=3) <= 0).all()  # higher cuts keep less
    assert kept[:, :, 0, 0].sum() > 0 and overlap.sum() > 0
    search = thresholds.search([], [tmp_path / "out"], data)
    assert search["full_resolution"] == search["images"] == len(valid)


def test_train_in_kernel_reads_inputs_writes_working_and_resumes(mini, tmp_path, monkeypatch):
    import shutil

    from steelkit import paths

    inputs, working = tmp_path / "input", tmp_path / "working"
    inputs.mkdir()
    (inputs / paths.COMPETITION_SLUG).symlink_to(mini)
    monkeypatch.setenv(paths.INPUT_ENV, str(inputs))
    monkeypatch.setenv(paths.WORKING_ENV, str(working))
    overrides = ["epochs=2", "n_folds=3", "batch_size=4", "effective_batch=4"]
    first = launch.train_in_kernel("seg-tiny", 1, overrides, epochs_now=1)
    assert first["out"] == working / "seg-tiny-fold1" and len(first["metrics"]) == 1
    assert "seg_tables" not in np.load(working / "seg-tiny-fold1" / "oof.npz").files  # not finished yet
    shutil.copytree(working, inputs / "earlier-session")  # the first session's output, attached
    shutil.rmtree(working)
    second = launch.train_in_kernel("seg-tiny", 1, overrides, resume_from="earlier-session")
    assert second["metrics"]["epoch"].tolist() == [1, 2]
    assert checkpoint.load_state(working / "seg-tiny-fold1" / "last.pt")["epoch"] == 1
    assert "seg_tables" in np.load(working / "seg-tiny-fold1" / "oof.npz").files  # finished: the final pass ran


def test_a_resumed_run_finds_its_files_by_name_wherever_they_are_mounted_now(tmp_path):
    import dataclasses

    saved = Recipe(encoder_weights="/kaggle/input/weights/efficientnet-b3.safetensors",
                   pseudo_labels="/kaggle/input/r0/pseudo.csv")
    moved = dataclasses.replace(saved, encoder_weights="/elsewhere/efficientnet-b3.safetensors",
                                pseudo_labels="/mnt/r0/pseudo.csv")
    train.check_resumable(saved, moved, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="encoder_weights .*efficientnet-b3.safetensors' -> .*resnet34"):
        train.check_resumable(saved, dataclasses.replace(saved, encoder_weights="/w/resnet34.safetensors"),
                              tmp_path / "last.pt")
