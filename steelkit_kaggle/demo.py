"""``make demo``: the whole chain rehearsed as Kaggle runs it, on a synthetic mini-competition.

A synthetic competition, the wheels dataset staged (from the package index on a new machine, from pip's
cache after that), then every demo kernel built and executed in turn in the Kaggle-like environment
(each one's outputs attached to the next), then the Kaggle mean Dice of both rounds.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import nbformat

from steelkit_kaggle import image, notebooks, rehearsal, report, settings, staging

DEMO_CHAIN = ["steelkit-demo-train-classifier", "steelkit-demo-train-segmenter", "steelkit-demo-submission",
              "steelkit-demo-train-classifier-round-2", "steelkit-demo-train-segmenter-round-2",
              "steelkit-demo-submission-round-2"]
USER = "steelkit-demo"


def package_lines(executed: Path) -> list[str]:
    """The lines an executed notebook printed about where each package came from."""
    text = "".join(output.get("text", "") for cell in nbformat.read(executed, 4).cells
                   for output in cell.get("outputs", []) if output.get("name") == "stdout")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("packages:")), None)
    return [] if start is None else [line for line in lines[start:start + 8] if line.startswith(("packages", "  "))]


# The demo's sheets carry 0.3 of the real texture: its tiny segmenter, trained from scratch on 90 images for
# 15 epochs on the CPU, stays near the all-empty score on busier sheets (validation Dice 0.848 at texture 1
# and 0.5 in the demo, all-empty 0.848; in process at 0.5: 0.864, and 0.876 after 30 epochs, against 0.854)
DEMO_TEXTURE = 0.3


def demo(out: Path, n_train: int = 120, n_test: int = 40, shape: tuple[int, int] = (128, 800),
         layout: str = "slug", wheels_from: Path | None = None, echo=print, progress=None,
         texture: float = DEMO_TEXTURE) -> int:
    """The offline rehearsal of the demo chain; returns 0 (a failing notebook raises, naming its cell).
    ``progress`` gets what the notebooks print as they run (default: the terminal, indented); ``texture``
    is the synthetic sheets' (1: the real sheets')."""
    progress = progress or _terminal
    from steelkit import metric, overlay, paths, synthetic
    from steelkit.competition import read_table

    out = out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    started = time.time()
    inputs = out / "input"
    data = synthetic.make(inputs / paths.COMPETITION_SLUG, synthetic.SynthConfig(
        n_train=n_train, n_test=n_test, height=shape[0], width=shape[1], texture=texture))
    steps = len(DEMO_CHAIN) + 1
    echo(f"[0/{steps}] synthetic competition: {n_train} train, {n_test} test images of "
         f"{shape[0]}x{shape[1]} (texture {texture:g} of the real sheets') in {data}")
    image.ensure(echo=echo)
    wheels = staging.stage_wheels(out / "steelkit-wheels", USER, find_links=wheels_from, echo=echo)
    rehearsal.attach(inputs, "steelkit-wheels", out / "steelkit-wheels", layout, "datasets", USER)
    echo(f"[1/{steps}] wheels dataset staged: {', '.join(w.name for w in wheels)}")
    config = settings.load()
    table = None
    for number, slug in enumerate(DEMO_CHAIN, start=2):
        echo(f"[{number}/{steps}] {slug}: building and running offline in {image.VENV.name} ...")
        kernel = settings.find(config, slug)
        result = rehearsal.run(notebooks.build(kernel, config, USER, out / "build", echo=echo), inputs,
                               progress=progress)
        rehearsal.attach(inputs, slug, result["working"], layout, "notebooks", USER)
        if number == 2:
            for line in package_lines(result["notebook"]):
                echo(f"      {line}")
        echo(f"      done in {result['seconds']:.0f} s (executed notebook: {result['notebook']})")

    found = {slug: paths_of(inputs, slug, layout) for slug in (DEMO_CHAIN[2], DEMO_CHAIN[5])}
    truth, _, _ = read_table(data / "test_truth.csv")
    rounds = {}
    for label, slug in (("round 1 (no pseudo labels)", DEMO_CHAIN[2]), ("round 2 (with pseudo labels)", DEMO_CHAIN[5])):
        table, _, _ = read_table(found[slug] / "submission.csv")
        rounds[label], empty = metric.score_tables(truth, table, shape)
        echo(f"\n== {label}: {found[slug] / 'submission.csv'}")
        echo(metric.format_report(rounds[label], empty))
    shutil.copy2(found[DEMO_CHAIN[5]] / "submission.csv", out / "submission.csv")
    pictures = overlay.write_overlays(data / "test_images", table, truth, out / "overlays", shape)
    echo(f"\nsubmission.csv: {out / 'submission.csv'}; {len(pictures)} overlay pictures (truth thick, "
         f"prediction thin) in {out / 'overlays'}")
    try:  # the page comes after a valid submission: it warns, it never fails the rehearsal
        page = write_report(out, inputs, layout, rounds, empty, pictures, time.time() - started)
        echo(f"report: {page}")
    except Exception as error:  # noqa: BLE001 (matplotlib and file errors alike)
        echo(f"warning: no report page ({type(error).__name__}: {error})")
    echo(f"{time.time() - started:.0f} s in all")
    return 0


def write_report(out: Path, inputs: Path, layout: str, rounds: dict, empty: dict, pictures: list[Path],
                 seconds: float) -> Path:
    """demo-output/report.html from what the rehearsal's notebooks wrote."""
    import pandas as pd

    outputs = [paths_of(inputs, slug, layout) for slug in DEMO_CHAIN]
    curves = [p for folder in outputs for p in sorted(folder.rglob("curves.png"))]
    searches = [p for folder in outputs for p in sorted(folder.glob("thresholds.png"))]
    pseudo = {f"round {n}": len(pd.read_csv(paths_of(inputs, slug, layout) / "pseudo.csv")) // 4
              for n, slug in ((1, DEMO_CHAIN[2]), (2, DEMO_CHAIN[5]))
              if (paths_of(inputs, slug, layout) / "pseudo.csv").is_file()}
    return report.write(out / "report.html", rounds, empty, curves, searches, pseudo, pictures[:6], seconds)


def paths_of(inputs: Path, slug: str, layout: str) -> Path:
    """Where the rehearsal attached a demo notebook's outputs."""
    return rehearsal.mount_path(inputs, slug, layout, "notebooks", USER)


def _terminal(text: str) -> None:
    """A notebook's printed text on the terminal, indented; progress bars keep redrawing in place."""
    sys.stdout.write("      " + text.replace("\n", "\n      ").replace("\r", "\r      ").rstrip(" "))
    sys.stdout.flush()
