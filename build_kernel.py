"""Build steelkit's Kaggle notebooks, rehearse them offline, stage model datasets.

    python build_kernel.py [--user USER] [--out DIR] [KERNEL ...]   build <out>/<slug>/ for `kaggle kernels push -p`
    python build_kernel.py --run KERNEL --input DIR                 build, then run offline (DIR plays /kaggle/input)
    python build_kernel.py --stage-models OUT --from DIR [DIR ...]  a model dataset for `kaggle datasets create -p OUT`
    python build_kernel.py --demo [--out DIR]                       the whole chain on a synthetic competition

Kernels and their settings are in kernels/kernels.json; their sources are jupytext percent files in kernels/.

How steelkit gets into a notebook: one code cell per module, ``%%writefile /tmp/steelkit-src/steelkit/<m>.py``
followed by the module's own source, then ``sys.path`` gains that folder and ``import steelkit`` works as
anywhere else. The sources stay readable on Kaggle (plain Python, not a base64 blob); a cell that cannot
write fails the notebook at once (no ``os.system`` return codes to ignore); and because the modules are
real files, tracebacks point into steelkit's own lines, which an in-memory importer cannot give.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
from slugify import slugify

ROOT = Path(__file__).resolve().parent
KERNELS = ROOT / "kernels"
PACKAGE = ROOT / "steelkit"
DATASETS_META = ROOT / "datasets-meta"
SOURCE_DIR = "/tmp/steelkit-src"  # where a notebook writes steelkit's modules (writable on Kaggle, not an output)
LANGUAGE_INFO = {"name": "python", "version": "3.11", "mimetype": "text/x-python", "file_extension": ".py",
                 "codemirror_mode": {"name": "ipython", "version": 3}, "pygments_lexer": "ipython3",
                 "nbconvert_exporter": "python"}
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def load_settings(path: Path = KERNELS / "kernels.json") -> dict:
    """The kernels' settings, checked against Kaggle's limits before anything is built: every kernel has a
    title of 5 to 50 characters that slugifies to its slug, slugs are unique, and its source file exists."""
    settings = json.loads(path.read_text())
    seen: dict[str, str] = {}
    for number, kernel in enumerate(settings["kernels"], start=1):
        title = kernel.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"{path}: kernel {number} has no title (Kaggle derives the kernel's slug from it)")
        if not 5 <= len(title) <= 50:
            raise ValueError(f"{path}: kernel {number} title {title!r} has {len(title)} characters; Kaggle "
                             "accepts 5 to 50")
        kernel.setdefault("slug", slugify(title))
        if len(kernel["slug"]) < 5 or slugify(title) != kernel["slug"]:
            raise ValueError(f"{path}: kernel {title!r}: the title must slugify to its slug "
                             f"(at least 5 characters), as Kaggle derives one from the other")
        if kernel["slug"] in seen:
            raise ValueError(f"{path}: kernels {seen[kernel['slug']]!r} and {title!r} have the same slug "
                             f"{kernel['slug']!r}: one would overwrite the other")
        seen[kernel["slug"]] = title
        source = KERNELS / kernel.get("source", "")
        if not kernel.get("source") or not source.is_file():
            raise FileNotFoundError(f"{path}: kernel {title!r}: source {source} not found")
    return settings


def find_kernel(settings: dict, name: str) -> dict:
    for kernel in settings["kernels"]:
        if name in (kernel["slug"], kernel["title"]):
            return kernel
    raise KeyError(f"no kernel {name!r} in kernels/kernels.json; kernels: "
                   f"{', '.join(k['slug'] for k in settings['kernels'])}")


def steelkit_cells() -> list:
    """The cells that write steelkit's modules and import it, plus the offline package set-up."""
    modules = sorted(PACKAGE.glob("*.py"))
    cells = [nbformat.v4.new_markdown_cell(
        f"### steelkit, inlined\nThe next {len(modules)} cells write the `steelkit` package to `{SOURCE_DIR}` "
        "(each cell is one module's source, unchanged), then import it. Packages missing from this image are "
        "installed from the attached wheels dataset, never from the internet."),
        nbformat.v4.new_code_cell(f"import os, shutil\nshutil.rmtree({SOURCE_DIR!r}, ignore_errors=True)\n"
                                  f"os.makedirs({SOURCE_DIR!r} + '/steelkit')")]
    for module in modules:
        cells.append(nbformat.v4.new_code_cell(f"%%writefile {SOURCE_DIR}/steelkit/{module.name}\n"
                                               + module.read_text()))
    cells.append(nbformat.v4.new_code_cell(
        f"import os, sys\nsys.path.insert(0, {SOURCE_DIR!r})\n"
        "os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')  # its import-time version check goes online\n"
        "from steelkit import offline, paths\n"
        "wheels = [p for p in paths.input_dir().glob('*') if any(p.glob('*.whl'))]\n"
        "print('installed from wheels:', offline.ensure_packages(wheels) or 'nothing needed')\n"
        "import steelkit\nprint('steelkit', steelkit.__version__)"))
    for cell in cells:
        cell.metadata["tags"] = ["steelkit"]
    return cells


def build_notebook(kernel: dict) -> nbformat.NotebookNode:
    """The notebook of one kernel: its source, its parameters injected, steelkit inlined."""
    source = KERNELS / kernel["source"]
    notebook = jupytext.read(source)
    cells = []
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "steelkit" in tags:
            cells += steelkit_cells()
            continue
        cells.append(cell)
        if "parameters" in tags and kernel.get("parameters"):
            injected = "\n".join(f"{k} = {v!r}" for k, v in kernel["parameters"].items())
            cells.append(nbformat.v4.new_code_cell(f"# parameters of this kernel (kernels/kernels.json)\n{injected}",
                                                   metadata={"tags": ["injected-parameters"]}))
    if not any("parameters" in c.metadata.get("tags", []) for c in cells):
        raise ValueError(f"{source}: no cell tagged 'parameters'")
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata["kernelspec"] = dict(KERNELSPEC)  # papermill, Kaggle's runner, needs a kernel name
    out.metadata["language_info"] = dict(LANGUAGE_INFO)
    for number, cell in enumerate(out.cells):
        cell["id"] = f"cell-{number}"  # stable ids: rebuilding an unchanged kernel gives the same file
    nbformat.validate(out)
    return out


def metadata(kernel: dict, settings: dict, user: str) -> dict:
    """kernel-metadata.json for `kaggle kernels push`, every flag explicit (the CLI's enable_internet
    default is true)."""
    fill = lambda values: [v.replace("{user}", user) for v in values]  # noqa: E731
    return {
        "id": f"{user}/{kernel['slug']}",
        "title": kernel["title"],
        "code_file": f"{kernel['slug']}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": kernel.get("is_private", True),
        "enable_gpu": kernel.get("enable_gpu", True),
        "enable_tpu": False,
        "enable_internet": False,
        "competition_sources": [settings["competition"]],
        "dataset_sources": fill(kernel.get("datasets", [])),
        "kernel_sources": fill(kernel.get("kernels", [])),
        "model_sources": [],
    }


def build(kernel: dict, settings: dict, user: str, out: Path) -> Path:
    """Write <out>/<slug>/<slug>.ipynb and kernel-metadata.json; return the folder."""
    folder = out / kernel["slug"]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(build_notebook(kernel), folder / f"{kernel['slug']}.ipynb")
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata(kernel, settings, user), indent=2) + "\n")
    if "ensemble" in kernel:
        print(f"{kernel['slug']}: {runtime_estimate(kernel['ensemble'])}")
    return folder


def runtime_estimate(ensemble: dict):
    """The submission kernel's estimated time on Kaggle's GPU (steelkit.budget)."""
    from steelkit import budget, recipe

    recipes = [recipe.preset(name) for name in ensemble["presets"]]
    return budget.estimate(recipes, ensemble.get("test_images", 5506), ensemble.get("tta", 3))


NO_NETWORK = '''
"""Loaded by every Python process of a steelkit rehearsal: any connection off this machine fails."""
import socket

_LOCAL = ("127.0.0.1", "::1", "localhost", "0.0.0.0")
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _check(address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in _LOCAL and not host.startswith("127."):
        raise ConnectionRefusedError(f"steelkit rehearsal: network access blocked ({address!r}); "
                                     "Kaggle runs this notebook with the internet off")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _check((host,))
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''


def run(folder: Path, input_dir: Path, working: Path | None = None, timeout: int = 3600) -> dict:
    """Execute a built notebook with nbclient, offline: ``input_dir`` plays /kaggle/input, the outputs go
    to ``working`` (default <folder>/working), every connection off this machine fails. Returns the
    executed notebook's path and the wall time; a failing cell raises nbclient's CellExecutionError."""
    from nbclient import NotebookClient

    slug = folder.name
    working = Path(working or folder / "working")
    shutil.rmtree(working, ignore_errors=True)
    working.mkdir(parents=True)
    notebook = nbformat.read(folder / f"{slug}.ipynb", as_version=4)
    with tempfile.TemporaryDirectory() as blocker:
        Path(blocker, "sitecustomize.py").write_text(NO_NETWORK)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STEELKIT_", "PYTHONPATH"))}
        env.update(PYTHONPATH=blocker, STEELKIT_INPUT=str(input_dir.resolve()),
                   STEELKIT_WORKING=str(working.resolve()), PYTHONUNBUFFERED="1")
        start = time.time()
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(working)}})
        try:
            client.execute(env=env)
        finally:
            nbformat.write(notebook, folder / f"{slug}.executed.ipynb")
    return {"notebook": folder / f"{slug}.executed.ipynb", "seconds": time.time() - start, "working": working}


def stage_models(out: Path, sources: list[Path], user: str, inference_config: Path | None = None) -> Path:
    """A model dataset folder: each training output's best.pt, recipe.json, metrics.csv and oof.npz (for
    the threshold search), the inference config, and dataset-metadata.json."""
    out.mkdir(parents=True, exist_ok=True)
    for source in sources:
        if not (source / "best.pt").is_file():
            raise FileNotFoundError(f"{source}: no best.pt (not a steelkit training output)")
        target = out / source.name
        target.mkdir(exist_ok=True)
        for name in ("best.pt", "recipe.json", "metrics.csv", "oof.npz"):
            if (source / name).is_file():
                shutil.copy2(source / name, target / name)
    if inference_config:
        shutil.copy2(inference_config, out / "inference.json")
    meta = json.loads((DATASETS_META / "steelkit-models" / "dataset-metadata.json").read_text())
    meta["id"] = meta["id"].replace("{user}", user)
    (out / "dataset-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


DEMO_CHAIN = ["steelkit-demo-train-classifier", "steelkit-demo-train-segmenter", "steelkit-demo-submission",
              "steelkit-demo-train-classifier-round-2", "steelkit-demo-train-segmenter-round-2",
              "steelkit-demo-submission-round-2"]


def demo(out: Path, n_train: int = 120, n_test: int = 40, shape: tuple[int, int] = (128, 800)) -> int:
    """The offline rehearsal: a synthetic competition, then every demo kernel built and executed in turn as
    Kaggle would (each one's outputs attached to the next under its slug), then the score."""
    from steelkit import metric, overlay, paths, synthetic
    from steelkit.competition import read_table

    out = out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    started = time.time()
    inputs = out / "input"
    data = synthetic.make(inputs / paths.COMPETITION_SLUG, synthetic.SynthConfig(
        n_train=n_train, n_test=n_test, height=shape[0], width=shape[1]))
    print(f"[0/{len(DEMO_CHAIN)}] synthetic competition: {n_train} train, {n_test} test images of "
          f"{shape[0]}x{shape[1]} in {data}", flush=True)
    settings = load_settings()
    for number, slug in enumerate(DEMO_CHAIN, start=1):
        print(f"[{number}/{len(DEMO_CHAIN)}] {slug}: building and running offline ...", flush=True)
        result = run(build(find_kernel(settings, slug), settings, "steelkit-demo", out / "build"), inputs)
        shutil.copytree(result["working"], inputs / slug)  # Kaggle attaches a notebook's outputs under its slug
        print(f"      done in {result['seconds']:.0f} s (executed notebook: {result['notebook']})", flush=True)

    truth, _, _ = read_table(data / "test_truth.csv")
    empty = metric.summarize(metric.dice_tables(truth, truth.assign(rle_1="", rle_2="", rle_3="", rle_4=""),
                                                shape)[[1, 2, 3, 4]].to_numpy())
    for label, slug in (("round 1 (no pseudo labels)", DEMO_CHAIN[2]), ("round 2 (with pseudo labels)", DEMO_CHAIN[5])):
        table, _, _ = read_table(inputs / slug / "submission.csv")
        scores = metric.summarize(metric.dice_tables(truth, table, shape)[[1, 2, 3, 4]].to_numpy())
        print(f"\n== {label}: {inputs / slug / 'submission.csv'}")
        print(metric.format_report(scores, empty))
    shutil.copy2(inputs / DEMO_CHAIN[5] / "submission.csv", out / "submission.csv")
    pictures = overlay.write_overlays(data / "test_images", table, truth, out / "overlays", shape)
    print(f"\nsubmission.csv: {out / 'submission.csv'}; {len(pictures)} overlay pictures (truth thick, "
          f"prediction thin) in {out / 'overlays'}; {time.time() - started:.0f} s in all")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kernels", nargs="*", help="slugs or titles (default: all)")
    parser.add_argument("--user", default=os.environ.get("KAGGLE_USERNAME", ""),
                        help="Kaggle user (default $KAGGLE_USERNAME)")
    parser.add_argument("--out", type=Path, default=ROOT / "build")
    parser.add_argument("--run", metavar="KERNEL", help="build and execute this kernel offline")
    parser.add_argument("--input", type=Path, help="with --run: the folder that plays /kaggle/input")
    parser.add_argument("--stage-models", type=Path, metavar="OUT")
    parser.add_argument("--from", dest="sources", nargs="+", type=Path, default=[])
    parser.add_argument("--inference-config", type=Path)
    parser.add_argument("--demo", action="store_true", help="the offline rehearsal on a synthetic competition")
    args = parser.parse_args(argv)
    if args.demo:
        return demo(args.out if args.out != ROOT / "build" else ROOT / "demo-output")
    user = args.user or "steelkit-user"
    if not args.user and not args.run:
        print("no --user or KAGGLE_USERNAME: ids use 'steelkit-user'", file=sys.stderr)
    settings = load_settings()
    if args.stage_models:
        print(f"staged {stage_models(args.stage_models, args.sources, user, args.inference_config)}")
        return 0
    if args.run:
        if not args.input:
            parser.error("--run needs --input DIR (the folder that plays /kaggle/input)")
        folder = build(find_kernel(settings, args.run), settings, user, args.out)
        result = run(folder, args.input)
        print(f"{folder.name}: ran offline in {result['seconds']:.0f} s; outputs in {result['working']}")
        return 0
    for kernel in [find_kernel(settings, k) for k in args.kernels] or settings["kernels"]:
        print(f"built {build(kernel, settings, user, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
