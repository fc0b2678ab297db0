"""kernels/kernels.json: the kernels as a small matrix, expanded and checked before anything is built.

A group is one notebook source and the kernels made from it: ``presets`` x ``folds`` (or one kernel when
it has neither), each with its title, parameters, attached datasets and notebooks, all templated with
``{preset}``, ``{fold}``, ``{encoder}`` (the preset's encoder) and ``{user}``; a parameter that is exactly
``"{fold}"`` becomes a number. A group's ``models`` attaches the outputs of other groups' kernels: every fold
of a preset, or the ``folds`` named. ``gpu`` asks Kaggle for its two T4s.

Checked against Kaggle's limits before anything is built: titles of 5 to 50 characters that slugify to
unique slugs, existing source files, attached kernels that exist in the matrix.
"""

from __future__ import annotations

import json
from pathlib import Path

from slugify import slugify

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
SETTINGS = KERNELS / "kernels.json"
TITLE_LIMITS = (5, 50)


class SettingsError(ValueError):
    """kernels.json says something Kaggle would reject or that cannot be built."""


def _fill(value, values: dict):
    if isinstance(value, str):
        if value == "{fold}" and "fold" in values:
            return values["fold"]
        for key, text in values.items():
            value = value.replace("{" + key + "}", str(text))
        return value
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _encoder(preset_name: str) -> str:
    from steelkit.recipe import preset

    return preset(preset_name).encoder


def expand(group: dict, path: Path = SETTINGS) -> list[dict]:
    """The kernels of one group: presets x folds, templated."""
    if "presets" in group or "folds" in group:
        cells = [{"preset": p, "fold": f, "encoder": _encoder(p)} for p in group.get("presets", [])
                 for f in group.get("folds", [])]
        if not cells:
            raise SettingsError(f"{path}: group {group.get('title')!r} names presets and folds, but not both")
    else:
        cells = [{}]
    kernels = []
    for values in cells:
        kernel = {"title": _fill(group.get("title"), values), "source": group.get("source"),
                  "gpu": bool(group.get("gpu", False)), "is_private": group.get("is_private", True),
                  "datasets": _fill(group.get("datasets", []), values),
                  "kernels": _fill(group.get("kernels", []), values),
                  "model_sources": _fill(group.get("model_sources", []), values),
                  "parameters": _fill(group.get("parameters", {}), values)}
        if values:
            kernel["preset"], kernel["fold"] = values["preset"], values["fold"]
        if "models" in group:
            kernel["models"], kernel["budget"] = group["models"], group.get("budget", {})
        kernels.append(kernel)
    return kernels


def load(path: Path = SETTINGS) -> dict:
    """{"competition", "kernels": every kernel, expanded and checked} from ``path``."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SettingsError(f"{path}: {error}") from None
    kernels = [kernel for group in raw.get("groups", []) for kernel in expand(group, path)]
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
    for kernel in kernels:
        if "models" in kernel:
            kernel["kernels"] = kernel["kernels"] + [f"{{user}}/{k['slug']}" for k in attached(kernels, kernel)]
        for source in kernel["kernels"]:
            if source.split("/", 1)[-1] not in seen:
                raise SettingsError(f"{path}: kernel {kernel['title']!r} attaches {source}, which kernels.json "
                                    "does not define")
    return {"competition": raw.get("competition", "severstal-steel-defect-detection"), "kernels": kernels}


def attached(kernels: list[dict], kernel: dict) -> list[dict]:
    """The kernels whose outputs ``kernel``'s ``models`` attach."""
    chosen = []
    for wanted in kernel.get("models", []):
        hits = [k for k in kernels if k.get("preset") == wanted["preset"]
                and ("folds" not in wanted or k["fold"] in wanted["folds"])]
        if not hits:
            raise SettingsError(f"kernel {kernel['title']!r}: no kernels of preset {wanted['preset']!r}"
                                + (f" folds {wanted['folds']}" if "folds" in wanted else ""))
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
