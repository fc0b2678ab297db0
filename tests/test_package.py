"""The package's shape: no import circle between steelkit's modules, and an import inside a function only
where it keeps a heavy or optional library off a path that does not need it."""

import ast
from pathlib import Path

import steelkit

PACKAGE = Path(steelkit.__file__).parent

# (module, imported inside a function): why it is not at the top
DEFERRED = {
    ("budget", "torch"): "estimates run build-side in a second; torch is needed only to count or measure",
    ("budget", "torch.utils.flop_counter"): "the same",
    ("budget", "torch.utils.data"): "the same",
    ("budget", "steelkit.models"): "the same (smp, timm)",
    ("budget", "steelkit.losses"): "the same",
    ("budget", "steelkit.train"): "the same",
    ("budget", "steelkit.augment"): "the same (albumentations)",
    ("budget", "steelkit.competition"): "the same (cv2, pandas)",
    ("budget", "steelkit.datasets"): "the same",
    ("budget", "steelkit.imagecache"): "the same",
    ("budget", "tempfile"): "only the measurement needs a scratch folder",
    ("cli", "*"): "each command imports what it needs: an error in the arguments is named at once",
    ("competition", "PIL"): "only for header sizes",
    ("models", "safetensors.torch"): "optional: only for .safetensors weights",
    ("train", "steelkit.figures"): "matplotlib's first import costs seconds; curves are drawn after the state",
}


def imports(tree: ast.AST):
    """(node, the modules it imports) of every import under ``tree``: ``from steelkit import x`` is
    ``steelkit.x``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node, [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, ([f"steelkit.{a.name}" for a in node.names] if node.module == "steelkit" else [node.module])


def module_graph():
    graph, deferred = {}, []
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        tree = ast.parse(path.read_text())
        top = set()
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in next(imports(node))[1]:
                    if target.startswith("steelkit.") and (PACKAGE / f"{target.split('.')[1]}.py").is_file():
                        top.add(target.split(".")[1])
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
    assert {"checkpoint", "models", "ensemble"} <= set(graph) and "models" not in graph["checkpoint"]


def test_an_import_inside_a_function_keeps_a_heavy_or_optional_library_away():
    _, deferred = module_graph()
    unexplained = sorted({(m, t) for m, t in deferred if (m, t) not in DEFERRED and (m, "*") not in DEFERRED})
    assert unexplained == [], f"imports inside functions that guard nothing listed: {unexplained}"
    stale = sorted(set(DEFERRED) - set(deferred) - {(m, t) for m, t in DEFERRED if t == "*"})
    assert stale == [], f"listed above, imported inside no function any more: {stale}"
