"""The campaign's tiny twin: kernels.json's matrix with every preset swapped for a small model that keeps what
the kernel exercises, for the dress rehearsal (offline here, or as CPU kernels on Kaggle) and the demo.

A twin keeps the kernel's stage, architecture, loss, optimizer, fine-tuning, parts, resumption, pseudo labels
and every attachment; its encoder, crops, batch, epochs and data shrink (``TWIN_ENCODERS``, ``Profile``). The
twin is made on kernels.json itself, group by group, and written as a kernels.json of its own
(``<out>/kernels.json``): the same ``settings.load`` expands and checks it, the same ``notebooks.build`` builds it,
the same ``push`` pushes it. Titles start "rehearse" instead of "steelkit", so the twin campaign has slugs of its
own on Kaggle. A ``Profile`` may also slice the matrix (some presets, folds and rounds): the demo is such a slice.

Parts: a session of the twin holds ``session_epochs`` epochs, so a twin trained for more is split into parts as
``plan`` splits a kernel longer than Kaggle's session (part n resumes part n-1 through ``RESUME_FROM``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from steelkit.recipe import preset
from steelkit_kaggle import settings
from steelkit_kaggle.plan import recipe_of

PREFIX, TWIN_PREFIX = "steelkit", "rehearse"
# the smallest encoder of each preset's family, built by the same code path (smp's own efficientnet and
# resnet encoders): the weights file format and loading are the same as the real ones'
TWIN_ENCODERS = {"efficientnet-b1": "efficientnet-b0", "efficientnet-b3": "efficientnet-b0", "resnet34": "resnet18"}
WEIGHTS_DATASET = "steelkit-encoder-weights"


@dataclass(frozen=True)
class Profile:
    """How small the twin is, and which slice of the matrix it keeps (empty: all)."""

    name: str
    epochs: int = 2  # a twin trained from scratch
    epochs_of: dict = field(default_factory=dict)  # preset -> epochs, where it differs
    finetune_epochs: int = 1  # a later round's fine-tuning, and a fine-tuning stage (init_checkpoint)
    session_epochs: int = 2  # a twin session's cap: longer twins are split into parts
    crop: tuple[int, int] = (64, 128)
    batch_size: int = 4
    effective_batch: int = 8
    overrides: tuple[str, ...] = ("num_workers=0", "val_batch_size=8", "warmup_epochs=0.5",
                                  "decoder_channels=64,32,16,16,8")
    train_images: int = 0  # 0: the competition's every image; else a subset (the rehearsal on Kaggle's data)
    encoder_weights: bool = True  # attach the staged (random) twin encoder weights
    tta: tuple[str, ...] = ()  # the tuning and submission kernels' TTA; () = kernels.json's
    encoders: dict = field(default_factory=dict)  # real encoder -> twin encoder, where it differs from TWIN_ENCODERS
    overrides_of: dict = field(default_factory=dict)  # preset -> recipe overrides of its own (after the others)
    presets: tuple[str, ...] = ()
    folds: tuple[int, ...] = ()
    rounds: tuple[int, ...] = ()
    gpu: bool = False


# every kernel of kernels.json, offline: one twin split into two parts (seg-unet-effb3: 3 epochs, 2 a session)
REHEARSAL = Profile("rehearsal", epochs_of={"seg-unet-effb3": 3})
# the same, as CPU kernels on Kaggle, training on a subset of the real images (no encoder weights dataset); the
# submission predicts all 5,506 real test images with ten twins on Kaggle's CPUs, so without TTA
KAGGLE = Profile("kaggle", epochs_of={"seg-unet-effb3": 3}, train_images=400, encoder_weights=False, tta=("none",))


def twin_title(text: str) -> str:
    """A title or slug of the real campaign -> the twin's ("steelkit r0 ..." -> "rehearse r0 ...")."""
    return re.sub(rf"(^|/){PREFIX}([ -]r\d|[ -]r{{)", rf"\g<1>{TWIN_PREFIX}\g<2>", text)


def _recipe_overrides(preset_name: str, profile: Profile, finetune: bool) -> list[str]:
    recipe = preset(preset_name)
    epochs = profile.finetune_epochs if finetune else profile.epochs_of.get(preset_name, profile.epochs)
    extra = [o for o in profile.overrides if recipe.arch == "Unet" or not o.startswith("decoder_channels")]
    changes = [f"encoder={twin_encoder(preset_name, profile)}", f"epochs={epochs}",
               f"crop_height={profile.crop[0]}", f"crop_width={profile.crop[1]}", f"batch_size={profile.batch_size}",
               f"effective_batch={profile.effective_batch}", *extra]
    if finetune or recipe.warmup_epochs == 0:
        changes.append("warmup_epochs=0")
    if profile.train_images:
        changes.append(f"train_images={profile.train_images}")
    return changes + list(profile.overrides_of.get(preset_name, ()))


def twin_group(group: dict, profile: Profile) -> list[dict]:
    """One group of kernels.json as the twin's groups (one per preset, each with its twin overrides)."""
    group = json.loads(json.dumps(group))
    group["title"] = twin_title(group["title"])
    group["gpu"] = profile.gpu
    group["kernels"] = [twin_title(v) for v in group.get("kernels", [])]
    group["parameters"] = {k: twin_title(v) if isinstance(v, str) else v
                           for k, v in group.get("parameters", {}).items()}
    if "later_rounds" in group:
        group["later_rounds"]["pseudo_labels"] = twin_title(group["later_rounds"]["pseudo_labels"])
        group["later_rounds"].pop("epochs", None)
    if profile.rounds and "rounds" in group:
        group["rounds"] = [r for r in group["rounds"] if r in profile.rounds]
        if not group["rounds"]:
            return []
    if profile.folds and "folds" in group:
        group["folds"] = [f for f in group["folds"] if f in profile.folds]
        if not group["folds"]:
            return []
    if "models" in group:
        group["models"] = [m for m in group["models"] if not profile.presets or m["preset"] in profile.presets]
        for model in group["models"]:
            if profile.folds and "folds" in model:
                model["folds"] = [f for f in model["folds"] if f in profile.folds]
        group["models"] = [m for m in group["models"] if m.get("folds", [0]) != []]
    if not profile.encoder_weights:
        group["datasets"] = [d for d in group.get("datasets", []) if not d.endswith(f"/{WEIGHTS_DATASET}")]
        group["parameters"].pop("ENCODER_WEIGHTS", None)
    if "presets" not in group:
        if profile.tta and "models" in group:
            group["parameters"]["TTA"] = list(profile.tta)
        return [group]
    twins = []
    for preset_name in group["presets"]:
        if profile.presets and preset_name not in profile.presets:
            continue
        twin = json.loads(json.dumps(group))
        twin["presets"] = [preset_name]
        finetune_stage = "INIT_FROM" in twin["parameters"]
        parameters = twin["parameters"]
        parameters["OVERRIDES"] = [*parameters.get("OVERRIDES", []),
                                   *_recipe_overrides(preset_name, profile, finetune_stage)]
        if "ENCODER_WEIGHTS" in parameters:
            parameters["ENCODER_WEIGHTS"] = parameters["ENCODER_WEIGHTS"].replace("{encoder}",
                                                                                  twin_encoder(preset_name, profile))
        if "later_rounds" in twin:  # a later round's fine-tuning: the twin's fine-tuning epochs, no warm-up
            twin["round_parameters"] = {str(r): {"OVERRIDES": parameters["OVERRIDES"] + [
                f"epochs={profile.finetune_epochs}", "warmup_epochs=0"]}
                for r in twin.get("rounds", []) if r > min(group.get("rounds", [0]))}
        twins.append(twin)
    return twins


def twin_encoder(preset_name: str, profile: Profile | None = None) -> str:
    encoder = preset(preset_name).encoder
    return {**TWIN_ENCODERS, **(profile.encoders if profile else {})}.get(encoder, encoder)


def write(out: Path, profile: Profile, source: Path = settings.SETTINGS) -> Path:
    """The twin of ``source`` (kernels.json) as ``<out>/kernels.json``; its ``campaign`` says it is a twin."""
    raw = json.loads(Path(source).read_text())
    raw["groups"] = [twin for group in raw.get("groups", []) for twin in twin_group(group, profile)]
    raw["campaign"] = {**raw.get("campaign", {}), "twin": profile.name}
    path = Path(out) / "kernels.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, indent=2) + "\n")
    return path


def parts_of(profile: Profile):
    """For ``settings.load``: a twin longer than ``profile.session_epochs`` epochs as parts of that many."""
    def parts(kernel: dict):
        if not Path(str(kernel["source"])).name.startswith("train_"):
            return None
        epochs = recipe_of(kernel).epochs
        if epochs <= profile.session_epochs:
            return None
        whole, rest = divmod(epochs, profile.session_epochs)
        return [profile.session_epochs] * whole + ([rest] if rest else [])
    return parts


def load(out: Path, profile: Profile, source: Path = settings.SETTINGS) -> dict:
    """The twin campaign, expanded and checked as kernels.json is (``settings.load``)."""
    return settings.load(write(out, profile, source), parts_of(profile))


def encoders(config: dict) -> list[str]:
    """The twin encoders whose weights the twin's kernels attach."""
    found = []
    for kernel in config["kernels"]:
        weights = kernel["parameters"].get("ENCODER_WEIGHTS", "")
        if weights:
            found.append(Path(weights).stem)
    return sorted(set(found))
