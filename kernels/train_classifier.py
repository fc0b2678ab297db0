# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # steelkit: train a classifier
# One fold of one classifier preset of the winning Severstal recipe (is class k present?).
# The output folder (checkpoints, recipe, metrics, out-of-fold probabilities) is this notebook's output:
# attach it to the submission notebook. Re-running with `RESUME = True` on an attached earlier output
# continues an interrupted run.

# %% tags=["parameters"]
PRESET = "cls-effb1"
FOLD = 0
OVERRIDES = []  # recipe overrides, "key=value"
PSEUDO_LABELS = ""  # a pseudo-label CSV under the inputs (e.g. "steelkit-submission/pseudo.csv"), "" = none
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
if ENCODER_WEIGHTS:
    overrides.append(f"encoder_weights={paths.input_dir() / ENCODER_WEIGHTS}")
if PSEUDO_LABELS:
    overrides.append(f"pseudo_labels={paths.input_dir() / PSEUDO_LABELS}")
chosen = recipe.override(recipe.preset(PRESET), overrides)
if RESUME_FROM:
    shutil.copytree(paths.input_dir() / RESUME_FROM / out_dir.name, out_dir, dirs_exist_ok=True)
result = train.train(chosen, data_dir, out_dir, resume=bool(RESUME_FROM), epochs_now=EPOCHS_NOW)
print(f"best gated-oracle Dice {result['best_score']:.5f}; outputs in {out_dir}")

# %%
import pandas as pd

metrics = pd.read_csv(out_dir / "metrics.csv")
metrics[["epoch", "train_loss", "val_loss", "score", *[f"f1_{k}" for k in (1, 2, 3, 4)]]].round(4)
