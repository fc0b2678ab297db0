"""Notebooks and their metadata: a kernel source (a jupytext percent file) with steelkit inlined, its
parameters injected, and ``kernel-metadata.json`` with every flag explicit, ready for
``kaggle kernels push -p``.

How steelkit gets into a notebook: one code cell per module it runs (``modules_for``: the modules its code
imports, what those import in turn, found from the sources), ``%%writefile /tmp/steelkit-src/steelkit/<m>.py``
followed by the module's own source, then ``sys.path`` gains that folder and ``import steelkit`` works as
anywhere else. The sources stay readable on Kaggle (plain Python, not a base64 blob); a cell that cannot
write fails the notebook at once (no ``os.system`` return codes to ignore); and because the modules are
real files, tracebacks point into steelkit's own lines, which an in-memory importer cannot give.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import jupytext
import nbformat

from steelkit import budget, recipe
from steelkit.errors import UserError
from steelkit_kaggle.settings import KERNELS, ensemble_presets

ROOT = KERNELS.parent
PACKAGE = ROOT / "steelkit"
SOURCE_DIR = "/tmp/steelkit-src"  # where a notebook writes steelkit's modules (writable on Kaggle, not an output)
LANGUAGE_INFO = {"name": "python", "version": "3.12", "mimetype": "text/x-python", "file_extension": ".py",
                 "codemirror_mode": {"name": "ipython", "version": 3}, "pygments_lexer": "ipython3",
                 "nbconvert_exporter": "python"}
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
GPU_MACHINE = "NvidiaTeslaT4"  # two T4s; Kaggle's torch build has no kernels for the P100 (sm_60)


ALWAYS = ("__init__", "offline", "paths")  # the set-up cell below imports them
ENTRY = {"launch": ("__main__",)}  # launch starts `python -m steelkit train` on every rank: the entry point too
# of a module whose functions each import their own (the command line), the functions a kernel runs
RUNS_ONLY = {"cli": ("main", "build_parser", "cmd_train")}


def imported_modules(source: str, functions: tuple[str, ...] | None = None) -> set[str]:
    """The steelkit modules that Python ``source`` imports anywhere (inside functions too; of its functions only
    ``functions`` where given)."""
    tree = ast.parse(source)
    roots = [tree] if functions is None else [
        node for node in tree.body if not isinstance(node, (ast.FunctionDef, ast.ClassDef))
        or (isinstance(node, ast.FunctionDef) and node.name in functions)]
    found = set()
    for node in (n for root in roots for n in ast.walk(root)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "steelkit":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("steelkit."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("steelkit.")}
    return {name for name in found if (PACKAGE / f"{name}.py").is_file()}


def modules_for(code: str) -> list[Path]:
    """The modules a kernel's ``code`` runs: what it imports, what those import in turn, and the set-up's."""
    wanted, todo = set(), [*ALWAYS, *imported_modules(code)]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            source = (PACKAGE / f"{name}.py").read_text()
            todo += [*imported_modules(source, RUNS_ONLY.get(name)), *ENTRY.get(name, ())]
    return sorted(PACKAGE / f"{name}.py" for name in wanted)


def steelkit_cells(modules: list[Path]) -> list:
    """The cells that write ``modules`` of steelkit and import it, plus the offline package set-up."""
    cells = [nbformat.v4.new_markdown_cell(
        f"### steelkit, inlined\nThe next {len(modules)} cells write the modules of the `steelkit` package this "
        f"kernel runs to `{SOURCE_DIR}` (each cell is one module's source, unchanged), then import it. Packages "
        "missing from this image are installed from the attached wheels dataset, never from the internet."),
        nbformat.v4.new_code_cell(f"import os, shutil\nshutil.rmtree({SOURCE_DIR!r}, ignore_errors=True)\n"
                                  f"os.makedirs({SOURCE_DIR!r} + '/steelkit')")]
    for module in modules:
        cells.append(nbformat.v4.new_code_cell(f"%%writefile {SOURCE_DIR}/steelkit/{module.name}\n"
                                               + module.read_text()))
    cells.append(nbformat.v4.new_code_cell(
        f"import os, sys\nsys.path.insert(0, {SOURCE_DIR!r})\n"
        "os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')  # its import-time version check goes online\n"
        "from steelkit import offline, paths\n"
        "print(offline.report(offline.ensure_packages(paths.wheel_dirs())))\n"
        "import steelkit\nprint('steelkit', steelkit.__version__)"))
    for cell in cells:
        cell.metadata["tags"] = ["steelkit"]
        if cell.cell_type == "code":  # hidden as Kaggle's viewer and Jupyter expect, one click away
            shown = cell is cells[-1]  # the set-up cell's output says where each package came from
            cell.metadata.update({"_kg_hide-input": True, "_kg_hide-output": not shown,
                                  "jupyter": {"source_hidden": True, "outputs_hidden": not shown}})
    return cells


# what each source writes to /kaggle/working, for the summary at the top of its notebooks
WRITES = {
    "train_classifier.py": "`<preset>-fold<k>/`: `recipe.json`, `best.pt`, `last.pt` (resume), `metrics.csv`, "
                           "`curves.png`, `oof.npz` (out-of-fold probabilities), `folds.csv`, `run.json` "
                           "(finished, or stopped and why)",
    "train_segmenter.py": "`<preset>-fold<k>/`: `recipe.json`, `best.pt`, `last.pt` (resume), `metrics.csv`, "
                          "`curves.png`, `oof.npz` (out-of-fold maps), `folds.csv`, `run.json` (finished, or "
                          "stopped and why)",
    "submission.py": "`submission.csv` (+ `submission.inference.json`, how it was made), `thresholds.png` when "
                     "it tunes, `pseudo.csv` when `PSEUDO_ROUND` > 0, `overlays/`",
    "tune.py": "`inference.json` (the tuned post-processing, for the submission), `cv.json` (the ensemble's "
               "local CV), `thresholds.png`, `ensemble/oof.npz` (the ensemble's full-resolution tables)",
}


def summary_cell(kernel: dict) -> nbformat.NotebookNode:
    """A short markdown summary: what this kernel runs, what it attaches, what it writes."""
    attached = ["the competition data"] + [f"dataset `{d.split('/', 1)[-1]}`" for d in kernel.get("datasets", [])] \
        + [f"the output of `{k.split('/', 1)[-1]}`" for k in kernel.get("kernels", [])] \
        + [f"model `{m.split('/', 1)[-1]}`" for m in kernel.get("model_sources", [])]
    parameters = ", ".join(f"`{k} = {v!r}`" for k, v in kernel.get("parameters", {}).items()) or "the defaults"
    machine = "two T4 GPUs" if kernel.get("gpu") else "the CPU"
    lines = [f"**This kernel** (`{kernel['slug']}`), on {machine}, internet off: {parameters}.",
             f"- **Attaches:** {'; '.join(attached)}.",
             f"- **Writes:** {WRITES.get(Path(kernel['source']).name, 'see the cells below')}.",
             "- The `steelkit` package is inlined in hidden cells below the parameters (click to review)."]
    return nbformat.v4.new_markdown_cell("\n".join(lines), metadata={"tags": ["summary"]})


def build_notebook(kernel: dict) -> nbformat.NotebookNode:
    """The notebook of one kernel: its source, its parameters injected, steelkit inlined."""
    source = KERNELS / kernel["source"]
    notebook = jupytext.read(source)
    code = "\n".join(cell.source for cell in notebook.cells
                     if cell.cell_type == "code" and "steelkit" not in cell.metadata.get("tags", [])
                     and not cell.source.lstrip().startswith(("%", "!")))
    cells = []
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if not cells and cell.cell_type == "markdown":  # the title, then what this kernel does
            cells += [cell, summary_cell(kernel)]
            continue
        if "steelkit" in tags:
            cells += steelkit_cells(modules_for(code))
            continue
        cells.append(cell)
        if "parameters" in tags and kernel.get("parameters"):
            injected = "\n".join(f"{k} = {v!r}" for k, v in kernel["parameters"].items())
            cells.append(nbformat.v4.new_code_cell(f"# parameters of this kernel (kernels/kernels.json)\n{injected}",
                                                   metadata={"tags": ["injected-parameters"]}))
    if not any("parameters" in c.metadata.get("tags", []) for c in cells):
        raise UserError(f"{source}: no cell tagged 'parameters'")
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata["kernelspec"] = dict(KERNELSPEC)  # papermill, Kaggle's runner, needs a kernel name
    out.metadata["language_info"] = dict(LANGUAGE_INFO)
    for number, cell in enumerate(out.cells):
        cell["id"] = f"cell-{number}"  # stable ids: rebuilding an unchanged kernel gives the same file
    nbformat.validate(out)
    return out


def metadata(kernel: dict, settings: dict, user: str) -> dict:
    """kernel-metadata.json for `kaggle kernels push`, every flag explicit (the CLI's enable_internet
    default is true); GPU kernels ask for T4s by ``machine_shape`` (the P100 cannot run Kaggle's torch)."""
    fill = lambda values: [v.replace("{user}", user) for v in values]  # noqa: E731
    meta = {
        "id": f"{user}/{kernel['slug']}",
        "title": kernel["title"],
        "code_file": f"{kernel['slug']}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": kernel.get("is_private", True),
        "enable_gpu": kernel["gpu"],
        "enable_tpu": False,
        "enable_internet": False,
        "competition_sources": [settings["competition"]],
        "dataset_sources": fill(kernel.get("datasets", [])),
        "kernel_sources": fill(kernel.get("kernels", [])),
        "model_sources": fill(kernel.get("model_sources", [])),
    }
    if kernel["gpu"]:
        meta["machine_shape"] = GPU_MACHINE
    return meta


def build(kernel: dict, settings: dict, user: str, out: Path, echo=print) -> Path:
    """Write <out>/<slug>/<slug>.ipynb and kernel-metadata.json; return the folder. A submission kernel's
    estimated run time on Kaggle is printed beside it."""
    folder = out / kernel["slug"]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(build_notebook(kernel), folder / f"{kernel['slug']}.ipynb")
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata(kernel, settings, user), indent=2) + "\n")
    presets = ensemble_presets(settings, kernel) if kernel["source"] == "submission.py" else []
    if presets:
        budget = kernel.get("budget", {})
        echo(f"{kernel['slug']}: {runtime_estimate(presets, budget.get('test_images', 5506), budget.get('tta', 3))}")
    return folder


def runtime_estimate(presets: list[str], test_images: int = 5506, tta: int = 3):
    """A submission kernel's estimated time on Kaggle's GPU (steelkit.budget)."""
    return budget.estimate([recipe.preset(name) for name in presets], test_images, tta)
