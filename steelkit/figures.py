"""Pictures a competitor judges a run by: training curves, the threshold search, scores per class.

matplotlib with the Agg canvas and no pyplot state: the same code draws in a notebook, a terminal and a
headless test. Each class keeps its colour everywhere (the overlay pictures' colours). Files are PNGs
written atomically; a notebook shows them with ``IPython.display.Image``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from steelkit import atomic
from steelkit.overlay import CLASS_COLOURS

COLOURS = [tuple(c / 255 for c in rgb) for rgb in CLASS_COLOURS]  # classes 1-4, as in the overlays


def save(figure: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``figure`` as a PNG, atomically."""
    FigureCanvasAgg(figure)
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def training_curves(history: pd.DataFrame, path: str | os.PathLike, title: str = "") -> Path:
    """Losses, the validation score with its per-class scores, and the learning rate per epoch."""
    figure = Figure(figsize=(13, 3.6), layout="constrained")
    losses, score, rate = figure.subplots(1, 3)
    epochs = history["epoch"]
    losses.plot(epochs, history["train_loss"], "o-", color="0.2", label="train")
    losses.plot(epochs, history["val_loss"], "s--", color="0.5", label="validation")
    losses.set(title="loss", xlabel="epoch")
    losses.legend()
    per_class = "dice_class" if "dice_class_1" in history else "f1"
    score.plot(epochs, history["score"], "o-", color="black", linewidth=2, label="score")
    for k in range(4):
        column = f"{per_class}_{k + 1}"
        if column in history:
            score.plot(epochs, history[column], ".-", color=COLOURS[k], label=f"class {k + 1}")
    score.set(title=f"validation score and per-class {'Dice' if per_class == 'dice_class' else 'F1'}", xlabel="epoch",
              ylim=(-0.02, 1.02))
    score.legend(fontsize="small", ncols=2)
    rate.plot(epochs, history["lr"], "o-", color="0.3")
    rate.set(title="learning rate (end of epoch)", xlabel="epoch")
    rate.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    for axes in (losses, score, rate):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    return save(figure, path)


def threshold_search(curves: list[dict], path: str | os.PathLike) -> Path:
    """Per class, the tuned Dice against the pixel threshold and against the minimum total area, the other
    settings at their chosen values; the seed's numbers (grey) and the chosen ones (colour) marked, and the Dice
    of never predicting the class (dotted; in colour where that was chosen)."""
    figure = Figure(figsize=(11, 9), layout="constrained")
    grid = figure.subplots(4, 2)
    for k, curve in enumerate(curves):
        for axes, key, label in ((grid[k, 0], "pixel", "pixel threshold"),
                                 (grid[k, 1], "min_total", "minimum total area (px of 256 x 1600)")):
            xs, ys = np.asarray(curve[key]["grid"]), np.asarray(curve[key]["dice"])
            axes.plot(xs, ys, "o-", color=COLOURS[k], markersize=3)
            axes.axvline(curve[key]["seed"], color="0.55", linestyle="--", label=f"seed {curve[key]['seed']:g}")
            if curve[key]["chosen"] is not None:
                axes.axvline(curve[key]["chosen"], color=COLOURS[k], linestyle="-", alpha=0.6,
                             label=f"chosen {curve[key]['chosen']:g}")
            if "off" in curve[key]:  # the class never predicted: its Dice is the all-empty one
                chosen = curve[key]["chosen"] is None
                axes.axhline(curve[key]["off"], color=COLOURS[k] if chosen else "0.75", linestyle=":",
                             label="not predicted" + (" (chosen)" if chosen else ""))
            axes.set(xlabel=label if k == 3 else None, ylabel=f"class {k + 1} Dice" if key == "pixel" else None)
            axes.grid(alpha=0.3)
            axes.legend(fontsize="small", loc="best")
    figure.suptitle("threshold search on out-of-fold predictions (mean Dice of each class's pairs)")
    return save(figure, path)


def score_bars(rounds: dict[str, dict], baseline: dict, path: str | os.PathLike) -> Path:
    """Mean and per-class Dice (``metric.summarize`` dicts) of each round beside the all-empty baseline,
    as grouped bars."""
    labels = ["mean", "class 1", "class 2", "class 3", "class 4"]
    keys = ["mean", "class_1", "class_2", "class_3", "class_4"]  # metric.summarize's keys
    series = {"all-empty": baseline, **rounds}
    figure = Figure(figsize=(9, 3.8), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(series)
    for i, (name, scores) in enumerate(series.items()):
        positions = np.arange(len(keys)) + (i - (len(series) - 1) / 2) * width
        axes.bar(positions, [scores[k] for k in keys], width, label=name,
                 color="0.75" if name == "all-empty" else None)
    axes.set_xticks(np.arange(len(keys)), labels)
    axes.set(ylabel="Kaggle mean Dice", ylim=(0, 1.2), title="Dice per class: rounds against the all-empty baseline")
    axes.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    axes.legend(fontsize="small", loc="upper center", ncols=len(series))  # above the bars, not over them
    axes.grid(axis="y", alpha=0.3)
    return save(figure, path)
