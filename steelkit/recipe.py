"""Training recipes: one frozen dataclass per run, named presets from the seed solution, overrides.

A recipe says everything about how a model was made; it is saved as JSON beside every checkpoint, and
a checkpoint is rebuilt from it alone. Presets are named instances; ``--set key=value`` overrides any
field, parsed by the field's type.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass
from pathlib import Path

from steelkit import atomic, fields
from steelkit.errors import UnknownName, UserError

STAGES = ("classifier", "segmenter")
LOSSES = ("bce", "bce_dice")
OPTIMIZERS = ("sgd", "radam", "adamw")
HEAD_PRIOR = {"classifier": 0.1, "segmenter": 0.01}  # the stages' initial output probabilities (head_prior)


@dataclass(frozen=True)
class Recipe:
    """How to train one model (one stage, one fold)."""

    name: str = "custom"
    stage: str = "segmenter"  # "classifier": 4 presence logits; "segmenter": (4, H, W) mask logits
    arch: str = "Unet"  # segmenter: an smp architecture (Unet, FPN, ...); classifier: "Classifier"
    encoder: str = "efficientnet-b3"  # any smp encoder name, or "tu-<timm name>"
    decoder_channels: tuple[int, ...] = ()  # the Unet family's decoder widths (refused for FPN); () = smp's default
    head_pooling: str = "avg"  # classifier: "avg" or "max" pooling before the 4-logit head
    head_dropout: float = 0.2  # classifier: dropout before the 4-logit head
    # every output's initial probability (the last layer's bias); 0 = the stage's (HEAD_PRIOR): a class on 1
    # image in 10 for a classifier, a pixel far more rarely for a segmenter. A saved recipe holds the value.
    head_prior: float = 0.0
    encoder_weights: str = ""  # local file of encoder weights (ImageNet); "" = random init; never downloaded
    init_checkpoint: str = ""  # a steelkit checkpoint to start from (fine-tuning stages)
    loss: str = "bce"  # "bce" | "bce_dice" (bce_weight * BCE + dice_weight * Dice)
    pos_weight: tuple[float, ...] = (2.0, 2.0, 1.0, 1.5)  # per-class BCE pos_weight; () = none
    bce_weight: float = 0.75
    dice_weight: float = 0.25
    optimizer: str = "radam"
    lr: float = 5e-4
    momentum: float = 0.9  # SGD only
    nesterov: bool = True  # SGD only: Nesterov momentum (where momentum > 0)
    weight_decay: float = 0.0
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.01
    epochs: int = 30
    batch_size: int = 12
    effective_batch: int = 24  # gradients accumulated over effective_batch // batch_size batches
    crop_height: int = 256  # random training crops; 0 = the full image size
    crop_width: int = 512
    hflip: float = 0.5
    vflip: float = 0.5
    brightness_contrast: float = 0.5
    brightness_contrast_limit: float = 0.2  # albumentations' RandomBrightnessContrast limits, as the seed used
    blackout: float = 0.0  # probability of the seed's defect blackout
    n_folds: int = 5
    fold: int = 0
    folds_seed: int = 42
    folds_file: str = ""  # the folds CSV trained on; "" = <data>/folds.csv, else <out>/folds.csv, else made there
    seed: int = 0
    num_workers: int = -1  # DataLoader workers per process; -1 = the cores present shared by the processes
    image_cache: str = "auto"  # decoded images in RAM: "auto" (where they fit), "on", "off" (steelkit.imagecache)
    val_batch_size: int = 4
    amp: bool = True  # mixed precision, on CUDA only
    channels_last: bool = True  # on CUDA only
    grad_clip: float = 1.0  # max gradient norm; 0 = no clipping
    pseudo_labels: str = ""  # pseudo-label CSV(s), comma-separated, whose test images join the training rows
    train_images: int = 0  # 0 = every training image; else a fixed subset of that many (a rehearsal's data)
    oof_scale: int = 4  # out-of-fold segmenter probabilities are saved downscaled by this factor, as uint8

    def __post_init__(self):
        if self.head_prior == 0 and self.stage in HEAD_PRIOR:  # recipes written before the field: today's value
            object.__setattr__(self, "head_prior", HEAD_PRIOR[self.stage])
        checks = [
            (self.stage in STAGES, f"stage {self.stage!r}: expected one of {STAGES}"),
            (self.loss in LOSSES, f"loss {self.loss!r}: expected one of {LOSSES}"),
            (self.optimizer in OPTIMIZERS, f"optimizer {self.optimizer!r}: expected one of {OPTIMIZERS}"),
            (self.batch_size >= 1 and self.effective_batch % self.batch_size == 0,
             f"effective_batch {self.effective_batch} must be a multiple of batch_size {self.batch_size}"),
            (self.epochs >= 1, f"epochs {self.epochs}: at least 1"),
            (self.val_batch_size >= 1, f"val_batch_size {self.val_batch_size}: at least 1"),
            (self.n_folds >= 2, f"n_folds {self.n_folds}: at least 2"),
            *[(getattr(self, name) >= 0, f"{name} {getattr(self, name)}: 0 (the full image) or a size in pixels")
              for name in ("crop_height", "crop_width")],
            *[(0 <= getattr(self, name) <= 1, f"{name} {getattr(self, name)}: a probability, in [0, 1]")
              for name in ("hflip", "vflip", "brightness_contrast", "blackout")],
            (self.lr > 0, f"lr {self.lr}: a learning rate above 0"),
            (0 <= self.momentum < 1, f"momentum {self.momentum}: in [0, 1)"),
            (0 < self.head_prior < 1, f"head_prior {self.head_prior}: a probability, in (0, 1)"),
            (0 <= self.head_dropout < 1, f"head_dropout {self.head_dropout}: in [0, 1)"),
            (0 <= self.brightness_contrast_limit < 1,
             f"brightness_contrast_limit {self.brightness_contrast_limit}: in [0, 1)"),
            (0 <= self.min_lr_ratio <= 1, f"min_lr_ratio {self.min_lr_ratio}: in [0, 1]"),
            *[(getattr(self, name) >= 0, f"{name} {getattr(self, name)}: 0 or more")
              for name in ("weight_decay", "warmup_epochs", "grad_clip", "bce_weight", "dice_weight")],
            (all(v > 0 for v in self.pos_weight), f"pos_weight {self.pos_weight}: weights above 0"),
            (all(v >= 1 for v in self.decoder_channels), f"decoder_channels {self.decoder_channels}: 1 or more each"),
            (0 <= self.fold < self.n_folds, f"fold {self.fold} outside 0..{self.n_folds - 1}"),
            (len(self.pos_weight) in (0, 4), f"pos_weight {self.pos_weight}: four values or none"),
            (self.oof_scale >= 1, f"oof_scale {self.oof_scale}: at least 1"),
            (self.train_images >= 0, f"train_images {self.train_images}: 0 (all) or a number of images"),
            (self.num_workers >= -1, f"num_workers {self.num_workers}: -1 (from the cores) or 0 and more"),
            (self.image_cache in ("auto", "on", "off"), f"image_cache {self.image_cache!r}: auto, on or off"),
            (self.stage == "segmenter" or self.arch == "Classifier",
             f"arch {self.arch!r}: a classifier's arch is 'Classifier'"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"recipe {self.name!r}: {message}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def save(self, path: str | os.PathLike) -> Path:
        return atomic.write_text(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, values: dict, where: str = "recipe") -> Recipe:
        """A recipe from its JSON fields (recipe.json, a checkpoint's): every key and type checked."""
        return fields.from_values(cls, values, where)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recipe:
        try:
            values = json.loads(Path(path).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path}: not valid JSON ({error})") from None
        return cls.from_dict(values, str(path))


_CLASSIFIER = dict(stage="classifier", arch="Classifier", loss="bce", pos_weight=(), optimizer="sgd", lr=0.01,
                   momentum=0.9, weight_decay=1e-4, effective_batch=32, blackout=0.5, epochs=30)
_SEGMENTER = dict(stage="segmenter", encoder="efficientnet-b3", optimizer="radam", lr=5e-4, effective_batch=24,
                  blackout=0.0, epochs=30)
_TINY = dict(encoder="tu-mobilenetv3_small_050", num_workers=0, val_batch_size=8, epochs=6, batch_size=8,
             crop_height=128, crop_width=256, warmup_epochs=0.5, oof_scale=1)

PRESETS: dict[str, Recipe] = {
    "cls-effb1": Recipe(name="cls-effb1", encoder="efficientnet-b1", batch_size=8, **_CLASSIFIER),
    "cls-r34": Recipe(name="cls-r34", encoder="resnet34", batch_size=16, **_CLASSIFIER),
    "seg-unet-effb3": Recipe(name="seg-unet-effb3", arch="Unet", batch_size=12, loss="bce", **_SEGMENTER),
    "seg-fpn-effb3": Recipe(name="seg-fpn-effb3", arch="FPN", batch_size=12, loss="bce", **_SEGMENTER),
    # the seed's second FPN stage: start from a BCE-trained FPN (set init_checkpoint), fine-tune with BCE+Dice
    "seg-fpn-effb3-dice": Recipe(name="seg-fpn-effb3-dice", arch="FPN", batch_size=12, loss="bce_dice",
                                 **{**_SEGMENTER, "lr": 1e-4, "epochs": 10}, warmup_epochs=0.0),
    # Tiny data from scratch cannot afford the seed's SGD or heavy augmentation: AdamW, no accumulation,
    # lighter blackout, no brightness/contrast; max pooling finds small defects in a large image.
    "cls-tiny": Recipe(name="cls-tiny", **{**_CLASSIFIER, **_TINY, "encoder": "resnet18", "head_pooling": "max",
                                          "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.0,
                                          "effective_batch": 8, "blackout": 0.25, "brightness_contrast": 0.0,
                                          "epochs": 8}),
    "seg-tiny": Recipe(name="seg-tiny", arch="Unet", decoder_channels=(64, 32, 16, 16, 8), loss="bce",
                       **{**_SEGMENTER, **_TINY, "lr": 1e-2, "effective_batch": 8, "epochs": 15}),
}


def preset(name: str) -> Recipe:
    """The named preset; the error lists the valid names."""
    if name not in PRESETS:
        raise UnknownName(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def parse_value(hint, text: str):
    """Parse a ``--set`` value by the field's type: int, float, bool, str or a comma-separated tuple."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(parse_value(item, part) for part in text.split(",") if part.strip())
    if hint is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise UserError(f"{text!r} is not a boolean (true/false)")
    return hint(text)


def override(recipe: Recipe, assignments: list[str]) -> Recipe:
    """Apply ``key=value`` overrides; an unknown key or a bad value raises naming it."""
    hints = typing.get_type_hints(Recipe)
    changes = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in hints:
            raise UserError(f"--set {assignment!r}: expected key=value with key one of {', '.join(hints)}")
        try:
            changes[key] = parse_value(hints[key], text.strip())
        except ValueError as error:
            raise UserError(f"--set {assignment!r}: {error}") from None
    return dataclasses.replace(recipe, **changes)
