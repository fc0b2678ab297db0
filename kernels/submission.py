# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # steelkit: submission
# Classifier and segmenter ensembles with TTA over the test images, the seed's post-processing (tuned on
# the attached out-of-fold probabilities when they are there), `submission.csv` in the sample's schema,
# validated, and optionally the next round's pseudo labels. Every checkpoint found under the inputs is
# used; each carries the recipe that rebuilds it without downloading anything.

# %% tags=["parameters"]
MODELS = []  # input folders to take checkpoints from; [] = every attached input
INFERENCE_CONFIG = ""  # an inference.json under the inputs (its TTA wins: the thresholds were tuned on it); "" = tune
# on out-of-fold files, else the seed's numbers
TUNE_THRESHOLDS = True  # search thresholds on the attached out-of-fold probabilities
TTA = ["none", "hflip", "vflip"]
BATCH_SIZE = 8
PSEUDO_ROUND = 0  # > 0: also write pseudo.csv for that round (the seed's rule)
PICTURES = 8  # overlay pictures of predictions to write

# %% tags=["steelkit"]
# build_kernel.py inlines the steelkit package here

# %%
import dataclasses
import json
import shutil

from steelkit import ensemble, overlay, paths, predict, thresholds, tuning

data_dir = paths.find_data_dir()
working = paths.working_dir()
# every checkpoint under the inputs named (datasets, notebook outputs, Kaggle Models), else under all inputs
roots = [paths.resolve_input(m) for m in MODELS] or [paths.input_dir()]
found = ensemble.split_by_stage(ensemble.find_checkpoints(roots))
print(f"{len(found['classifier'])} classifiers, {len(found['segmenter'])} segmenters:")
for path in found["classifier"] + found["segmenter"]:
    print("  ", path.relative_to(paths.input_dir()))

# %%
config = predict.InferenceConfig(tta=tuple(TTA), batch_size=BATCH_SIZE)
search = None
if INFERENCE_CONFIG:  # tuned by the tuning kernel, its local CV beside it
    tuned = predict.InferenceConfig.load(paths.resolve_input(INFERENCE_CONFIG))
    config = dataclasses.replace(tuned, batch_size=BATCH_SIZE)  # the batch size changes no number: the notebook's
    if tuple(TTA) != tuned.tta:  # the thresholds were tuned on maps made with the tuning's TTA: that one is used
        print(f"TTA {list(tuned.tta)} from {INFERENCE_CONFIG} (the thresholds were tuned on it), not this notebook's "
              f"TTA {list(TTA)}")
    cv_file = paths.resolve_input(INFERENCE_CONFIG).with_name("cv.json")
    if cv_file.is_file():
        shutil.copy2(cv_file, working / "cv.json")
elif TUNE_THRESHOLDS and all((p.parent / "oof.npz").is_file() for p in found["segmenter"]):
    search = thresholds.search([p.parent for p in found["classifier"]], [p.parent for p in found["segmenter"]],
                               data_dir)
    print(thresholds.format_report(search))
    print("note: this in-kernel search tunes the gate on the classifiers' training out-of-fold probabilities (each "
          "one model's, without TTA), not on the TTA-averaged ones this notebook gates with; the tuning kernel "
          "(tune.py, INFERENCE_CONFIG) tunes on those")
    config = dataclasses.replace(config, postprocess=search["config"])
    tuning.write_cv(working / "cv.json", search, [str(p.parent) for p in found["classifier"] + found["segmenter"]])
if (working / "cv.json").is_file():
    cv = json.loads((working / "cv.json").read_text())
    print(f"local CV ({cv.get('kind', 'in-sample')} out-of-fold mean Dice of this ensemble): {cv['mean']:.5f} on "
          f"{cv['images']} images (in-sample at the chosen settings: {cv.get('in_sample_mean', cv['mean']):.5f}; "
          f"the seed's settings: {cv['seed_mean']:.5f})")
print(config.to_json())

# %% [markdown]
# The threshold search, per class: the tuned Dice against the pixel threshold and the minimum total area,
# the seed's numbers (dashed) and the chosen ones marked. A choice on a plateau is safe; on a cliff, it is not.

# %%
from IPython.display import Image, display

from steelkit import figures

if search is not None:
    display(Image(filename=str(figures.threshold_search(search["curves"], working / "thresholds.png"))))
else:
    print("no search: thresholds from", INFERENCE_CONFIG or "the seed's numbers")

# %%
result = predict.predict(data_dir, found["classifier"], found["segmenter"], working / "submission.csv", config,
                         pseudo_out=working / "pseudo.csv" if PSEUDO_ROUND else None, pseudo_round=PSEUDO_ROUND)
print(f"submission.csv: {result['images']} images, {len(result['failed'])} unreadable {result['failed']}")
if PSEUDO_ROUND:
    print(f"pseudo.csv: {result['pseudo_images']} images chosen for round {PSEUDO_ROUND}")
table = result["table"]
(table.iloc[:, 1:] != "").mean().rename("share of images with a mask").to_frame()

# %%
pictures = overlay.write_overlays(data_dir / "test_images", table, None, working / "overlays",
                                  result["shape"], limit=PICTURES)
print(f"{len(pictures)} pictures in {working / 'overlays'}")
