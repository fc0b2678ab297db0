# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # steelkit: tune the ensemble's thresholds at full resolution
# Every out-of-fold training image that the classifiers held out too (the class gate needs their probabilities)
# is predicted again by the segmenters that held it out, with the submission's TTA, at full resolution; their maps are averaged as the submission averages its ensemble, and
# the threshold search scores exactly what the submission will keep. It writes `inference.json` (attach it
# to the submission, `INFERENCE_CONFIG`), `cv.json` (the ensemble's local CV) and the search's figure, so
# that the submission keeps its 60 minutes for the test images.

# %% tags=["parameters"]
MODELS = []  # input folders to take the training outputs from; [] = every attached input
TTA = ["none", "hflip", "vflip"]
BATCH_SIZE = 8
SPLITS = 5  # cross-validation parts of the search: a class leaves the seed's numbers only on a held-out gain

# %% tags=["steelkit"]
# build_kernel.py inlines the steelkit package here

# %%
from steelkit import ensemble, paths, predict, thresholds, tuning

data_dir, working = paths.find_data_dir(), paths.working_dir()
roots = [paths.resolve_input(m) for m in MODELS] or [paths.input_dir()]
found = ensemble.split_by_stage(ensemble.find_checkpoints(roots))
print(f"{len(found['classifier'])} classifiers, {len(found['segmenter'])} segmenters")
config = predict.InferenceConfig(tta=tuple(TTA), batch_size=BATCH_SIZE)
search = tuning.tune([p.parent for p in found["classifier"]], [p.parent for p in found["segmenter"]], data_dir,
                     working, config, splits=SPLITS)
print(thresholds.format_report(search))

# %% [markdown]
# The search per class: the tuned Dice against the pixel threshold and the minimum total area, the seed's
# numbers (dashed) and the chosen ones marked.

# %%
from IPython.display import Image

from steelkit import figures

Image(filename=str(figures.threshold_search(search["curves"], working / "thresholds.png")))
