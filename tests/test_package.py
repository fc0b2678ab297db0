"""The packages' shape (steelkit, and steelkit_kaggle on the build side): no import circle between the modules
of either, and an import inside a function only where it keeps a heavy or optional library off a path that does
not need it."""

import ast
from pathlib import Path

import steelkit
import steelkit_kaggle

PACKAGES = {"steelkit": Path(steelkit.__file__).parent, "steelkit_kaggle": Path(steelkit_kaggle.__file__).parent}

# (module, imported inside a function): why it is not at the top
DEFERRED = {
    ("steelkit.budget", "torch"): "estimates run build-side in a second; torch is needed only to count or measure",
    ("steelkit.budget", "torch.utils.flop_counter"): "the same",
    ("steelkit.budget", "torch.utils.data"): "the same",
    ("steelkit.budget", "steelkit.models"): "the same (smp, timm)",
    ("steelkit.budget", "steelkit.losses"): "the same",
    ("steelkit.budget", "steelkit.train"): "the same",
    ("steelkit.budget", "steelkit.augment"): "the same (albumentations)",
    ("steelkit.budget", "steelkit.competition"): "the same (cv2, pandas)",
    ("steelkit.budget", "steelkit.datasets"): "the same",
    ("steelkit.budget", "steelkit.imagecache"): "the same",
    ("steelkit.budget", "tempfile"): "only the measurement needs a scratch folder",
    ("steelkit.cli", "*"): "each command imports what it needs: an error in the arguments is named at once",
    ("steelkit.competition", "PIL"): "only for header sizes",
    ("steelkit.models", "safetensors.torch"): "optional: only for .safetensors weights",
    ("steelkit.train", "steelkit.figures"): "matplotlib's first import costs seconds; curves are drawn after the state",
    ("steelkit_kaggle.fetch", "steelkit.checkpoint"): "torch: build_kernel's plan, build and push start without it",
    ("steelkit_kaggle.staging", "timm"): "smp and timm cost seconds, and only staging weights builds models",
    ("steelkit_kaggle.staging", "segmentation_models_pytorch"): "the same",
    ("steelkit_kaggle.staging", "torch"): "the same",
    ("steelkit_kaggle.staging", "safetensors.torch"): "the same",
    ("steelkit_kaggle.staging", "huggingface_hub"): "online only: stage-encoder-weights downloads, nothing else may",
}


def imports(tree: ast.AST):
    """(node, the modules it imports) of every import under ``tree``: ``from steelkit import x`` is
    ``steelkit.x``, and so for steelkit_kaggle."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node, [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, ([f"{node.module}.{a.name}" for a in node.names] if node.module in PACKAGES
                         else [node.module])


def module_graph():
    """{"package.module": the package modules it imports at its top}, [(module, what a function imports)]."""
    graph, deferred = {}, []
    for package, folder in PACKAGES.items():
        for path in sorted(folder.glob("*.py")):
            name = f"{package}.{path.stem}"
            tree = ast.parse(path.read_text())
            top = set()
            for node in tree.body:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    for target in next(imports(node))[1]:
                        owner, _, module = target.partition(".")
                        if owner in PACKAGES and (PACKAGES[owner] / f"{module.split('.')[0]}.py").is_file():
                            top.add(f"{owner}.{module.split('.')[0]}")
            graph[name] = top
            for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
                deferred += [(name, target) for _, targets in imports(function) for target in targets]
    return graph, deferred


def test_no_import_circle_between_the_modules():
    graph, _ = module_graph()
    state = {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"import circle: {' -> '.join(trail + [name])}"
        state[name] = "open"
        for other in sorted(graph.get(name, ())):
            visit(other, trail + [name])
        state[name] = "done"

    for name in graph:
        visit(name, [])
    assert {"steelkit.checkpoint", "steelkit.models", "steelkit_kaggle.push", "steelkit_kaggle.fetch"} <= set(graph)
    assert "steelkit.models" not in graph["steelkit.checkpoint"]
    kaggle_side = sorted((m, t) for m, targets in graph.items() for t in targets
                         if m.startswith("steelkit.") and t.startswith("steelkit_kaggle."))
    assert kaggle_side == [], f"the notebooks' package imports build-side code: {kaggle_side}"


def kaggle_calls(tree: ast.AST) -> list[str]:
    """What in ``tree`` runs the kaggle CLI or its API: a command line's list (``["kernels", "push", ...]``), a
    lookup of the ``kaggle`` program, an import of the kaggle package."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant) \
                and node.elts[0].value in ("kernels", "competitions", "datasets", "models", "quota"):
            found.append(f"line {node.lineno}: kaggle {node.elts[0].value} ...")
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("which", "with_name") \
                and any(isinstance(a, ast.Constant) and a.value == "kaggle" for a in node.args):
            found.append(f"line {node.lineno}: the program 'kaggle'")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "from kaggle import" in node.value:
            found.append(f"line {node.lineno}: the kaggle package")
    found += [f"line {node.lineno}: import {targets}" for node, targets in imports(tree)
              if any(t == "kaggle" or t.startswith("kaggle.") for t in targets)]
    return found


def test_the_kaggle_cli_is_called_by_one_module():
    """Only kaggle_cli runs the CLI or its API; push, fetch and submit import it, and push does not import
    fetch (``build_kernel.py push`` composes them)."""
    calls = {path.stem: kaggle_calls(ast.parse(path.read_text()))
             for path in [*PACKAGES["steelkit_kaggle"].glob("*.py"), Path(__file__).parents[1] / "build_kernel.py"]}
    assert calls["kaggle_cli"], "the check finds nothing even where the calls are"
    elsewhere = {name: found for name, found in calls.items() if found and name != "kaggle_cli"}
    assert elsewhere == {}, f"the kaggle CLI called outside kaggle_cli: {elsewhere}"
    graph, deferred = module_graph()
    for user in ("push", "fetch", "submit"):
        assert "steelkit_kaggle.kaggle_cli" in graph[f"steelkit_kaggle.{user}"]
    assert "steelkit_kaggle.fetch" not in graph["steelkit_kaggle.push"] | {
        t for m, t in deferred if m == "steelkit_kaggle.push"}
    assert graph["steelkit_kaggle.kaggle_cli"] == set()


def test_an_import_inside_a_function_keeps_a_heavy_or_optional_library_away():
    _, deferred = module_graph()
    unexplained = sorted({(m, t) for m, t in deferred if (m, t) not in DEFERRED and (m, "*") not in DEFERRED})
    assert unexplained == [], f"imports inside functions that guard nothing listed: {unexplained}"
    stale = sorted(set(DEFERRED) - set(deferred) - {(m, t) for m, t in DEFERRED if t == "*"})
    assert stale == [], f"listed above, imported inside no function any more: {stale}"
