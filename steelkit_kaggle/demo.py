"""``make demo``: a short slice of the dress rehearsal (``dress_rehearsal``), scored, with pictures.

The same twin campaign as ``build_kernel.py rehearse``, cut to one classifier preset and one segmenter preset,
fold 0 and two rounds (round 1 fine-tunes both from round 0 with round 0's pseudo labels, as the campaign's later
rounds do): train both, tune the thresholds, submit, then the same again. Nothing of it is a chain of its own in
kernels.json: the slice is made from the same groups. The twins train longer here than in the full rehearsal, on
larger images, so that they learn something; the Kaggle mean Dice of both rounds is printed beside the
all-empty baseline, with overlay pictures and a report page.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd

from steelkit import metric, overlay
from steelkit.competition import read_table
from steelkit_kaggle import dress_rehearsal, report, twins

USER = dress_rehearsal.USER
# The demo's sheets carry 0.3 of the real texture: its tiny segmenter, trained from scratch on 90 images for
# 15 epochs on the CPU, stays near the all-empty score on busier sheets (validation Dice 0.848 at texture 1
# and 0.5 in the demo, all-empty 0.848; in process at 0.5: 0.864, and 0.876 after 30 epochs, against 0.854)
DEMO_TEXTURE = 0.3
# The demo's twins learn from scratch on 90 images in minutes on the CPU, which the rehearsal's need not: the
# classifier is cls-r34's (resnet18, as the rehearsal's), with max pooling (small defects in a large image), a
# lighter blackout, no brightness/contrast and a higher rate for SGD; the segmenter's encoder is the smaller
# MobileNetV3 at a Unet rate of 1e-2 (measured with the rehearsal's twins: cls-effb1's, efficientnet-b0 with SGD
# at 0.01, stayed at the all-empty score through its 8 epochs, the Unet on efficientnet-b0 at 5e-4 through the 4
# epochs watched)
DEMO = twins.Profile("demo", epochs_of={"cls-r34": 8, "seg-unet-effb3": 15}, finetune_epochs=5,
                     session_epochs=100, crop=(128, 256), batch_size=8, effective_batch=8,
                     presets=("cls-r34", "seg-unet-effb3"), folds=(0,), rounds=(0, 1),
                     encoders={"efficientnet-b3": "tu-mobilenetv3_small_050"},
                     overrides_of={"cls-r34": ("head_pooling=max", "blackout=0.25", "brightness_contrast=0",
                                               "lr=0.03"),
                                   "seg-unet-effb3": ("lr=0.01",)})
DEMO_DATA = dress_rehearsal.Data(n_train=120, n_test=40, shape=(128, 800), texture=DEMO_TEXTURE)


def package_lines(executed: Path) -> list[str]:
    """The lines an executed notebook printed about where each package came from."""
    text = "".join(output.get("text", "") for cell in nbformat.read(executed, 4).cells
                   for output in cell.get("outputs", []) if output.get("name") == "stdout")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("packages:")), None)
    return [] if start is None else [line for line in lines[start:start + 8] if line.startswith(("packages", "  "))]


def demo(out: Path, layout: str = "slug", wheels_from: Path | None = None, echo=print, progress=None,
         data: dress_rehearsal.Data = DEMO_DATA, profile: twins.Profile = DEMO) -> int:
    """The demo slice of the rehearsal in ``out`` (replaced whole); returns 0, or 1 naming a failing kernel.
    ``progress`` gets what the notebooks print as they run (default: the terminal, indented)."""
    out = Path(out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    started = time.time()
    try:
        result = dress_rehearsal.rehearse(out, profile, data, layout=layout, wheels_from=wheels_from, echo=echo,
                                          progress=progress or _terminal)
    except dress_rehearsal.RehearsalFailed as error:
        echo(f"demo failed: {error}")
        return 1
    first = result["order"][0]
    executed = out / "build" / first["slug"] / f"{first['slug']}.executed.ipynb"
    for line in package_lines(executed):
        echo(f"      {line}")
    rounds, empty = {}, None
    for row in result["rounds"]:
        label = f"round {row['round']}" + (" (with pseudo labels)" if row["round"] else " (no pseudo labels)")
        rounds[label], empty = row["test"], row["empty"]
        echo(f"\n== {label}: {row['folder'] / 'submission.csv'}")
        echo(metric.format_report(row["test"], row["empty"]))
    echo("\nlocal CV beside the hidden test set:\n" + dress_rehearsal.format_rounds(result["rounds"]))
    final = result["rounds"][-1]["folder"]
    shutil.copy2(final / "submission.csv", out / "submission.csv")
    truth, _, _ = read_table(out / dress_rehearsal.TRUTH)
    table, _, _ = read_table(out / "submission.csv")
    test_images = result["data_dir"] / "test_images"
    pictures = overlay.write_overlays(test_images, table, truth, out / "overlays", data.shape)
    echo(f"\nsubmission.csv: {out / 'submission.csv'}; {len(pictures)} overlay pictures (truth thick, "
         f"prediction thin) in {out / 'overlays'}")
    try:  # the page comes after a valid submission: it warns, it never fails the rehearsal
        page = write_report(out, result, rounds, empty, pictures, time.time() - started)
        echo(f"report: {page}")
    except Exception as error:  # noqa: BLE001 (matplotlib and file errors alike)
        echo(f"warning: no report page ({type(error).__name__}: {error})")
    echo(f"{time.time() - started:.0f} s in all")
    return 0


def write_report(out: Path, result: dict, rounds: dict, empty: dict, pictures: list[Path], seconds: float) -> Path:
    """demo-output/report.html from what the rehearsal's notebooks wrote."""
    outputs = [result["outputs"] / k["slug"] for k in result["order"]]
    curves = [p for folder in outputs for p in sorted(folder.rglob("curves.png"))]
    searches = [p for folder in outputs for p in sorted(folder.glob("thresholds.png"))]
    pseudo = {f"round {row['round']}": len(pd.read_csv(row["folder"] / "pseudo.csv")) // 4
              for row in result["rounds"] if (row["folder"] / "pseudo.csv").is_file()}
    return report.write(out / "report.html", rounds, empty, curves, searches, pseudo, pictures[:6], seconds)


def _terminal(text: str) -> None:
    """A notebook's printed text on the terminal, indented; progress bars keep redrawing in place."""
    sys.stdout.write("      " + text.replace("\n", "\n      ").replace("\r", "\r      ").rstrip(" "))
    sys.stdout.flush()
