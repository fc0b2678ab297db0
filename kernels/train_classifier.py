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
# attach it to the submission notebook. `RESUME_FROM` naming an attached earlier output of this notebook
# continues an interrupted run (build_kernel.py makes such parts of a kernel longer than a session).

# %% tags=["parameters"]
import time

NOTEBOOK_STARTED = time.time()  # the first line run: Kaggle's session cap counts from here
PRESET = "cls-effb1"
FOLD = 0
OVERRIDES = []  # recipe overrides, "key=value"
INIT_FROM = ""  # fine-tune from an attached output, e.g. a previous round's "<slug>/cls-effb1-fold0"
PSEUDO_LABELS = ""  # a pseudo-label CSV under the inputs (e.g. "steelkit-submission/pseudo.csv"), "" = none
RESUME_FROM = ""  # an earlier output of this notebook under the inputs, to resume from
EPOCHS_NOW = None  # stop after this many epochs (stay inside the session limit), resume later
TIME_LIMIT = None  # None = steelkit.timelimit.KERNEL_LIMIT, the session limit the plan's parts fit: stop cleanly before it
ENCODER_WEIGHTS = ""  # a local encoder weights file under the inputs (ImageNet), "" = none
IMAGE_CACHE = "auto"  # decoded images in RAM: "auto" (where they fit), "on", "off"
GPUS = None  # None = every visible GPU: more than one -> torchrun, one process each (Kaggle's 2 x T4)
DEVICE = None  # None = cuda if available; "cpu" with GPUS = 2 rehearses the two-process path on the CPU

# %% tags=["steelkit"]
# build_kernel.py inlines the steelkit package here

# %%
from steelkit.launch import train_in_kernel

result = train_in_kernel(PRESET, FOLD, OVERRIDES, encoder_weights=ENCODER_WEIGHTS, init_from=INIT_FROM,
                         pseudo_labels=PSEUDO_LABELS, resume_from=RESUME_FROM, epochs_now=EPOCHS_NOW,
                         gpus=GPUS, device=DEVICE, time_limit=TIME_LIMIT, image_cache=IMAGE_CACHE,
                         started_at=NOTEBOOK_STARTED)
print(f"best gated-oracle Dice {result['best_score']:.5f} (a right call per pair); outputs in {result['out']}")

# %% [markdown]
# Per epoch: losses, the gated-oracle Dice and each class's F1 at probability 0.5.

# %%
result["metrics"][["epoch", "train_loss", "val_loss", "score", *[f"f1_{k}" for k in (1, 2, 3, 4)]]].round(4)

# %% [markdown]
# The training curves (`curves.png` beside `metrics.csv`, redrawn after an epoch at most once a minute,
# and at the end): losses, the validation score with its per-class scores, and the learning rate.

# %%
from IPython.display import Image

Image(filename=str(result["out"] / "curves.png"))
