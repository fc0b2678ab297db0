"""kernels/kernels.json: the kernels as a small matrix, expanded and checked before anything is built.

A group is one notebook source and the kernels made from it: ``rounds`` x ``presets`` x ``folds`` (or one
kernel when it has none of them), each with its title, parameters, attached datasets and notebooks, all
templated with ``{preset}``, ``{fold}``, ``{encoder}`` (the preset's encoder), ``{round}``, ``{previous}``,
``{next}`` and ``{user}``; a parameter that is exactly ``"{fold}"`` or ``"{next}"`` becomes a number. A group's
``models`` attaches the outputs of other groups' kernels of the same round: every fold of a preset, or the
``folds`` named. ``gpu`` asks Kaggle for its two T4s. ``round_parameters`` overrides parameters per round.

Pseudo-label rounds: a training group's ``later_rounds`` says how rounds after the first train:
``pseudo_labels`` (the title of the kernel whose ``pseudo.csv`` they attach, e.g. the previous round's
submission) and ``mode``: ``"finetune"`` (start from the previous round's checkpoint of the same preset and
fold for ``epochs`` epochs; it attaches that kernel instead of the group's own ``kernels``) or
``"scratch"`` (the group's own recipe again, with the pseudo rows).

Parts: a kernel longer than a session becomes a chain of parts (``parts``: epochs per part, or what
``load``'s ``parts_of`` says from the budget): part 1 keeps the title, part n is "<title> part n", attaches
part n-1's output and resumes from it (``RESUME_FROM``); every other kernel attaches the last part.

Checked before anything is built (``check_matrix``): titles of 5 to 50 characters that slugify to unique
slugs, existing source files, attached kernels that exist and come earlier (kernels are ordered round by
round), path parameters under attached inputs, later rounds that fine-tune from the previous round's kernel of
their preset and fold, and tuning or submission kernels whose classifiers held out their segmenters' folds
(``gate_folds``; a group's ``"gate": "shared folds"`` accepts tuning the gate on the folds both hold out).
"""

from __future__ import annotations

import json
from pathlib import Path

from slugify import slugify

from steelkit.errors import UserError
from steelkit.recipe import preset

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
SETTINGS = KERNELS / "kernels.json"
TITLE_LIMITS = (5, 50)


class SettingsError(UserError):
    """kernels.json says something Kaggle would reject or that cannot be built."""


def _strings(value, change):
    """``value`` (strings, lists and dicts of them) with ``change`` applied to every string in it."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_strings(v, change) for v in value]
    if isinstance(value, dict):
        return {k: _strings(v, change) for k, v in value.items()}
    return value


def _fill(value, values: dict):
    """``value`` templated with ``values``; a string that is exactly "{fold}", "{next}" or "{round}" becomes
    that number."""
    def fill(text: str):
        for number in ("fold", "next", "round"):
            if text == "{" + number + "}" and number in values:
                return values[number]
        for key, replacement in values.items():
            text = text.replace("{" + key + "}", str(replacement))
        return text
    return _strings(value, fill)


def _encoder(preset_name: str) -> str:
    return preset(preset_name).encoder


def expand(group: dict, path: Path = SETTINGS) -> list[dict]:
    """The kernels of one group: rounds x presets x folds, templated."""
    if "presets" in group or "folds" in group:
        cells = [{"preset": p, "fold": f, "encoder": _encoder(p)} for p in group.get("presets", [])
                 for f in group.get("folds", [])]
        if not cells:
            raise SettingsError(f"{path}: group {group.get('title')!r} names presets and folds, but not both")
    else:
        cells = [{}]
    rounds = group.get("rounds", [None])
    if any(r is not None and (not isinstance(r, int) or r < 0) for r in rounds):
        raise SettingsError(f"{path}: group {group.get('title')!r}: rounds {rounds} must be numbers from 0")
    kernels = []
    for round_number in rounds:
        for cell in cells:
            values = dict(cell)
            if round_number is not None:
                values.update(round=round_number, previous=round_number - 1, next=round_number + 1)
            parameters = {**group.get("parameters", {}),
                          **group.get("round_parameters", {}).get(str(round_number), {})}
            kernel = {"title": _fill(group.get("title"), values), "source": group.get("source"),
                      "gpu": bool(group.get("gpu", False)), "is_private": group.get("is_private", True),
                      "datasets": _fill(group.get("datasets", []), values),
                      "kernels": _fill(group.get("kernels", []), values),
                      "model_sources": _fill(group.get("model_sources", []), values),
                      "parameters": _fill(parameters, values)}
            if cell:
                kernel["preset"], kernel["fold"] = cell["preset"], cell["fold"]
            if round_number is not None:
                kernel["round"] = round_number
            if "models" in group:
                kernel["models"], kernel["budget"] = group["models"], group.get("budget", {})
                kernel["gate"] = group.get("gate", "")
            if "parts" in group:
                kernel["parts"] = list(group["parts"])
            if round_number and "later_rounds" in group:
                later_round(kernel, group, values, path)
            kernels.append(kernel)
    return kernels


def later_round(kernel: dict, group: dict, values: dict, path: Path) -> None:
    """A training kernel of a round after the first: the previous round's pseudo labels, and either a
    fine-tuning start from the previous round's same model or the recipe again from scratch."""
    later = group["later_rounds"]
    mode = later.get("mode", "finetune")
    if mode not in ("finetune", "scratch") or "pseudo_labels" not in later:
        raise SettingsError(f"{path}: group {group.get('title')!r}: later_rounds needs pseudo_labels (a kernel "
                            f"title) and mode 'finetune' or 'scratch', not {later}")
    pseudo = slugify(_fill(later["pseudo_labels"], values))
    if mode == "finetune":
        previous = slugify(_fill(group.get("title") or "", {**values, "round": values["previous"]}))
        kernel["kernels"] = [f"{{user}}/{previous}"]
        kernel["parameters"]["INIT_FROM"] = f"{previous}/{kernel['preset']}-fold{kernel['fold']}"
        kernel["finetunes"] = True  # checked by check_matrix: the previous round's kernel of its preset and fold
        epochs = later.get("epochs")
        if epochs:
            kernel["parameters"]["OVERRIDES"] = [*kernel["parameters"].get("OVERRIDES", []), f"epochs={epochs}"]
    kernel["kernels"].append(f"{{user}}/{pseudo}")
    kernel["parameters"]["PSEUDO_LABELS"] = f"{pseudo}/pseudo.csv"


def split_into_parts(kernel: dict, epochs: list[int]) -> list[dict]:
    """One kernel as a chain of sessions, ``epochs`` epochs each: part n resumes part n-1's output."""
    parts = []
    for number, count in enumerate(epochs, start=1):
        part = json.loads(json.dumps(kernel))
        part["part"], part["part_of"] = [number, len(epochs)], kernel["slug"]
        part["parameters"]["EPOCHS_NOW"] = count if number < len(epochs) else None
        part["epochs"] = count
        if number > 1:
            previous = parts[-1]["slug"]
            part["title"], part["slug"] = f"{kernel['title']} part {number}", f"{kernel['slug']}-part-{number}"
            part["kernels"] = [*part["kernels"], f"{{user}}/{previous}"]
            part["parameters"]["RESUME_FROM"] = previous
        parts.append(part)
    return parts


def _renamed(value, renames: dict):
    """``value`` with references to a split kernel's slug pointed at its last part."""
    def rename(text: str) -> str:
        for old, new in renames.items():
            if text in (old, f"{{user}}/{old}"):
                return text.replace(old, new)
            if text.startswith(f"{old}/"):
                return new + text[len(old):]
        return text
    return _strings(value, rename)


def is_last_part(kernel: dict) -> bool:
    part = kernel.get("part", [1, 1])
    return part[0] == part[1]


def outputs(kernel: dict) -> list[str]:
    """The files a kernel must have written, relative to its output folder (what ``fetch`` checks)."""
    parameters, source = kernel["parameters"], Path(kernel["source"]).name
    if source.startswith("train_"):
        run = f"{parameters['PRESET']}-fold{parameters['FOLD']}"
        names = ["recipe.json", "last.pt", "metrics.csv", "run.json"] + (["best.pt", "oof.npz"]
                                                                        if is_last_part(kernel) else [])
        return [f"{run}/{name}" for name in names]
    if source == "submission.py":
        return ["submission.csv"] + (["pseudo.csv"] if parameters.get("PSEUDO_ROUND") else [])
    if source == "tune.py":
        return ["inference.json", "cv.json"]
    return []


def load(path: Path = SETTINGS, parts_of=None) -> dict:
    """{"competition", "campaign", "kernels": every kernel, expanded and checked} from ``path``.
    ``parts_of(kernel)`` (optional) gives a training kernel's epochs per session when it needs more than one
    (``steelkit_kaggle.plan`` asks the budget)."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SettingsError(f"{path}: {error}") from None
    kernels = [kernel for group in raw.get("groups", []) for kernel in expand(group, path)]
    kernels.sort(key=lambda k: k.get("round", -1))  # round by round (stable: group by group within a round)
    for kernel in kernels:
        kernel["slug"] = slugify(str(kernel["title"])) if isinstance(kernel["title"], str) else ""
    split, renames = [], {}
    for kernel in kernels:
        epochs = kernel.pop("parts", None)
        if epochs is None and parts_of is not None and Path(str(kernel["source"])).name.startswith("train_"):
            epochs = parts_of(kernel)
        if epochs and len(epochs) > 1:
            chain = split_into_parts(kernel, epochs)
            renames[kernel["slug"]] = chain[-1]["slug"]
            split += chain
        else:
            split.append(kernel)
    for kernel in split:
        outside = {old: new for old, new in renames.items() if kernel.get("part_of") != old}
        kernel["kernels"], kernel["parameters"] = (_renamed(kernel["kernels"], outside),
                                                   _renamed(kernel["parameters"], outside))
    kernels = split
    seen: dict[str, str] = {}
    for number, kernel in enumerate(kernels, start=1):
        title = kernel["title"]
        if not isinstance(title, str) or not title.strip():
            raise SettingsError(f"{path}: kernel {number} has no title (Kaggle derives the kernel's slug from it)")
        if not TITLE_LIMITS[0] <= len(title) <= TITLE_LIMITS[1]:
            raise SettingsError(f"{path}: title {title!r} has {len(title)} characters; Kaggle accepts "
                                f"{TITLE_LIMITS[0]} to {TITLE_LIMITS[1]}")
        kernel["slug"] = slugify(title)
        if len(kernel["slug"]) < 5:
            raise SettingsError(f"{path}: title {title!r} slugifies to {kernel['slug']!r}, under 5 characters")
        if kernel["slug"] in seen:
            raise SettingsError(f"{path}: titles {seen[kernel['slug']]!r} and {title!r} give the same slug "
                                f"{kernel['slug']!r}: one kernel would overwrite the other")
        seen[kernel["slug"]] = title
        source = KERNELS / str(kernel["source"])
        if not kernel["source"] or not source.is_file():
            raise SettingsError(f"{path}: kernel {title!r}: source file {source} not found")
    check_finetunes(kernels, path)
    for kernel in kernels:
        if "models" in kernel:
            kernel["kernels"] = kernel["kernels"] + [f"{{user}}/{k['slug']}" for k in attached(kernels, kernel)]
    check_matrix(kernels, path)
    return {"competition": raw.get("competition", "severstal-steel-defect-detection"),
            "campaign": raw.get("campaign", {}), "kernels": kernels}


PATH_PARAMETERS = ("INIT_FROM", "PSEUDO_LABELS", "INFERENCE_CONFIG", "RESUME_FROM")


def check_matrix(kernels: list[dict], path: Path = SETTINGS) -> None:
    """What would fail on Kaggle after GPU hours were spent, refused before anything runs: an attached kernel
    that kernels.json does not define or that comes later in its order (round by round); a path parameter
    under an input the kernel does not attach; a later round that does not fine-tune from the previous
    round's kernel of its preset and fold; a tuning or submission kernel whose classifiers did not hold out
    the images its segmenters held out (``gate_folds``)."""
    check_finetunes(kernels, path)
    position = {k["slug"]: n for n, k in enumerate(kernels)}
    for number, kernel in enumerate(kernels):
        name = _name(kernel, path)
        for source in kernel["kernels"]:
            slug = source.split("/", 1)[-1]
            if slug not in position:
                raise SettingsError(f"{name} attaches {source}, which kernels.json does not define"
                                    + (" (a round that does not exist?)" if "round" in kernel else ""))
            if position[slug] >= number:
                raise SettingsError(f"{name} attaches {slug}, which comes after it (rounds run in order): it "
                                    "would attach an output that does not exist yet")
        inputs = {s.split("/", 1)[-1] for s in kernel["kernels"] + kernel["datasets"] + kernel["model_sources"]}
        for parameter in PATH_PARAMETERS:
            value = kernel["parameters"].get(parameter)
            if isinstance(value, str) and value and value.split("/", 1)[0] not in inputs:
                raise SettingsError(f"{name}: {parameter} {value!r} is under {value.split('/', 1)[0]!r}, which "
                                    "the kernel does not attach")
        if "models" in kernel:
            gate_folds(kernels, kernel, name)


def _name(kernel: dict, path: Path) -> str:
    return f"{path}: kernel {kernel['title']!r}" + (f" (round {kernel['round']})" if "round" in kernel else "")


def check_finetunes(kernels: list[dict], path: Path = SETTINGS) -> None:
    """Every later round that fine-tunes starts from the previous round's kernel of its preset and fold."""
    by_slug = {k["slug"]: k for k in kernels}
    for kernel in kernels:
        if not kernel.get("finetunes"):
            continue
        init = str(kernel["parameters"].get("INIT_FROM", "")).split("/", 1)[0]
        source = by_slug.get(init)
        if source is None or (source.get("round"), source.get("preset"), source.get("fold")) != (
                kernel["round"] - 1, kernel["preset"], kernel["fold"]):
            raise SettingsError(f"{_name(kernel, path)} fine-tunes from {init!r}, which is not a round "
                                f"{kernel['round'] - 1} kernel of {kernel['preset']} fold {kernel['fold']}"
                                + ("" if source else " (kernels.json defines no such kernel: is the previous "
                                   "round in the group's rounds?)"))


def gate_folds(kernels: list[dict], kernel: dict, name: str = "") -> list[int]:
    """The folds a tuning or submission kernel's class gate is tuned on: those held out by its segmenters and
    its classifiers alike. Segmenter folds the classifiers miss are refused unless the group says
    ``"gate": "shared folds"`` (the search then tunes the gate on the shared folds' images alone, and says
    so); none shared is always refused."""
    folds = {"classifier": set(), "segmenter": set()}
    for source in kernel["kernels"]:
        found = next((k for k in kernels if k["slug"] == source.split("/", 1)[-1]), None)
        if found is not None and "preset" in found:
            folds[preset(found["preset"]).stage].add(found["fold"])
    shared, missed = folds["classifier"] & folds["segmenter"], folds["segmenter"] - folds["classifier"]
    if folds["classifier"] and folds["segmenter"] and not shared:
        raise SettingsError(f"{name}: its classifiers hold out folds {sorted(folds['classifier'])} and its "
                            f"segmenters folds {sorted(folds['segmenter'])}: no image has both, so the class gate "
                            "cannot be tuned")
    if folds["classifier"] and missed and kernel.get("gate") != "shared folds":
        raise SettingsError(f"{name}: its segmenters hold out folds {sorted(folds['segmenter'])}, its classifiers "
                            f"only {sorted(folds['classifier'])}: the gate has no classifier probability for folds "
                            f"{sorted(missed)}. Train the classifiers on those folds, or say \"gate\": \"shared "
                            "folds\" in the group to tune on the shared folds' images alone")
    return sorted(shared) if folds["classifier"] else sorted(folds["segmenter"])


def attached(kernels: list[dict], kernel: dict) -> list[dict]:
    """The kernels whose outputs ``kernel``'s ``models`` attach."""
    chosen = []
    for wanted in kernel.get("models", []):
        hits = [k for k in kernels if k.get("preset") == wanted["preset"] and is_last_part(k)
                and k.get("round") == kernel.get("round") and ("folds" not in wanted or k["fold"] in wanted["folds"])]
        if not hits:
            raise SettingsError(f"kernel {kernel['title']!r}: no kernels of preset {wanted['preset']!r}"
                                + (f" folds {wanted['folds']}" if "folds" in wanted else "")
                                + (f" in round {kernel['round']}" if "round" in kernel else ""))
        chosen += hits
    return chosen


def find(settings: dict, name: str) -> dict:
    """A kernel by slug or title; the error lists the slugs."""
    for kernel in settings["kernels"]:
        if name in (kernel["slug"], kernel["title"]):
            return kernel
    raise SettingsError(f"no kernel {name!r} in kernels/kernels.json; kernels: "
                        f"{', '.join(k['slug'] for k in settings['kernels'])}")


def dependencies(settings: dict, kernel: dict) -> list[dict]:
    """The kernels whose outputs ``kernel`` attaches (its kernel_sources)."""
    return [find(settings, source.split("/", 1)[-1]) for source in kernel["kernels"]]


def push_order(settings: dict, chosen: list[dict]) -> list[dict]:
    """``chosen`` in an order where every kernel comes after the chosen kernels it attaches."""
    order, state = [], {}
    names = {k["slug"] for k in chosen}

    def visit(kernel: dict, trail: tuple) -> None:
        if state.get(kernel["slug"]) == "done":
            return
        if kernel["slug"] in trail:
            raise SettingsError(f"kernels attach each other in a cycle: {' -> '.join(trail + (kernel['slug'],))}")
        for source in dependencies(settings, kernel):
            if source["slug"] in names:
                visit(source, trail + (kernel["slug"],))
        state[kernel["slug"]] = "done"
        order.append(kernel)

    for kernel in chosen:
        visit(kernel, ())
    return order


def ensemble_presets(settings: dict, kernel: dict) -> list[str]:
    """The presets of the models a submission kernel attaches (for its run-time budget)."""
    return [k["parameters"]["PRESET"] for k in dependencies(settings, kernel) if "PRESET" in k["parameters"]]
