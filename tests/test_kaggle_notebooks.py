"""The kernels as Kaggle gets them: built notebooks and metadata the real kaggle CLI accepts."""

import json

import nbformat
import pytest

from steelkit import paths
from steelkit_kaggle import notebooks, settings

CONFIG = settings.load()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    return {k["slug"]: notebooks.build(k, CONFIG, "alice", out, echo=lambda line: None) for k in CONFIG["kernels"]}


def test_every_kernel_builds_a_valid_notebook_with_honest_metadata(built):
    every = sorted(p.name for p in notebooks.PACKAGE.glob("*.py"))
    for slug, folder in built.items():
        notebook = nbformat.read(folder / f"{slug}.ipynb", as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata.kernelspec.name == "python3" and notebook.metadata.language_info.name == "python"
        tags = [c.metadata.get("tags", []) for c in notebook.cells]
        first_code = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code")
        assert "parameters" in tags[first_code], f"{slug}: the first code cell holds the parameters"
        written = [c.source.splitlines()[0].rsplit("/", 1)[1] for c in notebook.cells
                   if c.source.startswith("%%writefile")]
        assert written == sorted(written) and set(written) < set(every), f"{slug}: the modules it runs, no more"
        assert {"__init__.py", "offline.py", "paths.py"} <= set(written), "the set-up cell's modules"
        for cell in (c for c in notebook.cells if c.source.startswith("%%writefile")):
            name = cell.source.splitlines()[0].rsplit("/", 1)[1]
            assert cell.source.split("\n", 1)[1] == (notebooks.PACKAGE / name).read_text(), "plain source"
            assert notebooks.imported_modules((notebooks.PACKAGE / name).read_text(),
                                              notebooks.RUNS_ONLY.get(name[:-3])) <= {w[:-3] for w in written}
        meta = json.loads((folder / "kernel-metadata.json").read_text())
        assert meta["id"] == f"alice/{slug}" and meta["code_file"] == f"{slug}.ipynb" and len(slug) >= 5
        assert meta["enable_internet"] is False and meta["language"] == "python"
        assert meta["kernel_type"] == "notebook" and isinstance(meta["enable_gpu"], bool)
        assert meta["competition_sources"] == [paths.COMPETITION_SLUG]
        assert all(s.startswith("alice/") for s in meta["dataset_sources"] + meta["kernel_sources"])
        assert "alice/steelkit-wheels" in meta["dataset_sources"], "every kernel can install what the image lacks"
        if meta["enable_gpu"]:
            assert meta["machine_shape"] == "NvidiaTeslaT4", "the P100 cannot run Kaggle's torch build"
        else:
            assert "machine_shape" not in meta


def test_one_source_builds_several_kernels_with_their_parameters(built):
    slug = "steelkit-r0-train-cls-effb1-fold-2"
    notebook = nbformat.read(built[slug] / f"{slug}.ipynb", 4)
    injected = [c.source for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "PRESET = 'cls-effb1'" in injected[0] and "FOLD = 2" in injected[0]


def test_kernels_can_attach_kaggle_models():
    kernel = {**settings.find(CONFIG, "steelkit-r2-submission"), "model_sources": ["{user}/steelkit/pyTorch/v1/2"]}
    assert notebooks.metadata(kernel, CONFIG, "alice")["model_sources"] == ["alice/steelkit/pyTorch/v1/2"]


def test_datasets_metadata():
    for path in notebooks.ROOT.glob("datasets-meta/*/dataset-metadata.json"):
        meta = json.loads(path.read_text())
        slug = meta["id"].split("/")[1]
        assert 6 <= len(slug) <= 50 and 6 <= len(meta["title"]) <= 50 and len(meta["licenses"]) == 1


def test_notebooks_read_as_a_story_with_the_inlined_package_hidden(built):
    notebook = nbformat.read(built["steelkit-r2-submission"] / "steelkit-r2-submission.ipynb", 4)
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# steelkit")
    summary = notebook.cells[1]
    assert "summary" in summary.metadata["tags"] and "**Attaches:**" in summary.source
    assert "the output of `steelkit-r2-train-seg-fpn-effb3-fold-3`" in summary.source
    assert "submission.csv" in summary.source
    for cell in notebook.cells:
        shown = "offline.report" in cell.source  # the set-up cell: where each package came from
        if cell.cell_type != "code" or "steelkit" not in cell.metadata.get("tags", []):
            assert "_kg_hide-input" not in cell.metadata and "jupyter" not in cell.metadata, cell.source[:60]
            continue
        assert cell.metadata["_kg_hide-input"] is True and cell.metadata["jupyter"]["source_hidden"] is True
        assert cell.metadata["_kg_hide-output"] is not shown and cell.metadata["jupyter"]["outputs_hidden"] is not shown
    story = [c for c in notebook.cells if c.cell_type == "code" and "steelkit" not in c.metadata.get("tags", [])]
    assert len(story) <= 10, "the reader's cells, not the package's"


def test_a_kernel_carries_the_modules_its_code_imports_and_theirs_in_turn():
    code = "from steelkit import paths, tuning\n"
    found = {p.stem for p in notebooks.modules_for(code)}
    assert {"tuning", "thresholds", "postprocess", "rle", "ensemble", "tta", "oof"} <= found
    assert not {"train", "cli", "synthetic", "realism", "budget"} & found, "nothing tuning never imports"
    trained = {p.stem for p in notebooks.modules_for("from steelkit import launch\n")}
    assert {"__main__", "cli", "train", "recipe"} <= trained, "torchrun's ranks run python -m steelkit train"
    assert not {"synthetic", "realism", "budget", "thresholds"} & trained, "of the command line, train alone"
