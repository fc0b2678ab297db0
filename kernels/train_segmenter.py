# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # steelkit: train a segmenter
# One fold of one segmenter preset of the winning Severstal recipe (Unet or FPN, efficientnet-b3),
# trained on 256 x 512 crops and validated on full images with the Kaggle mean Dice. The output folder is
# this notebook's output: attach it to the submission notebook (and to a fine-tuning stage through
# `init_checkpoint`).

# %% tags=["parameters"]
PRESET = "seg-fpn-effb3"
FOLD = 0
OVERRIDES = []  # recipe overrides, "key=value"
INIT_FROM = ""  # fine-tune from an attached output, e.g. "steelkit-train-seg-fpn-effb3-fold-0/seg-fpn-effb3-fold0"
PSEUDO_LABELS = ""  # a pseudo-label CSV under the inputs, "" = none
RESUME_FROM = ""  # an earlier output of this notebook under the inputs, to resume from
EPOCHS_NOW = None  # stop after this many epochs (stay inside the session limit), resume later
ENCODER_WEIGHTS = ""  # a local encoder weights file under the inputs (ImageNet), "" = none

# %% tags=["steelkit"]
# build_kernel.py inlines the steelkit package here

# %%
import shutil

from steelkit import paths, recipe, train

data_dir = paths.find_data_dir()
out_dir = paths.working_dir() / f"{PRESET}-fold{FOLD}"
overrides = [f"fold={FOLD}", *OVERRIDES]
if INIT_FROM:
    overrides.append(f"init_checkpoint={paths.input_dir() / INIT_FROM / 'best.pt'}")
if ENCODER_WEIGHTS:
    overrides.append(f"encoder_weights={paths.input_dir() / ENCODER_WEIGHTS}")
if PSEUDO_LABELS:
    overrides.append(f"pseudo_labels={paths.input_dir() / PSEUDO_LABELS}")
chosen = recipe.override(recipe.preset(PRESET), overrides)
if RESUME_FROM:
    shutil.copytree(paths.input_dir() / RESUME_FROM / out_dir.name, out_dir, dirs_exist_ok=True)
result = train.train(chosen, data_dir, out_dir, resume=bool(RESUME_FROM), epochs_now=EPOCHS_NOW)
print(f"best validation Dice {result['best_score']:.5f}; outputs in {out_dir}")

# %%
import pandas as pd

metrics = pd.read_csv(out_dir / "metrics.csv")
metrics[["epoch", "train_loss", "val_loss", "score", *[f"dice_class_{k}" for k in (1, 2, 3, 4)]]].round(4)
