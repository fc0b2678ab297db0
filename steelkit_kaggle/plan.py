"""The campaign's cost before the first push: every kernel's estimated GPU hours (``steelkit.budget``), the
parts a kernel longer than a session is split into, the total against the weekly GPU quota, and a
week-by-week schedule that respects the kernels' dependencies, the quota and the GPU sessions Kaggle runs at
once.

Figures from kernels.json's ``campaign``: the train set's images (12,568; a fold validates a fifth), the test
images, the pseudo rows a later round adds (an assumption: about half of the 5,506 test images pass the
seed's confidence rule), the weekly quota when ``kaggle quota`` does not answer (30 h, Kaggle's published
figure) and the GPU sessions that run at once (2: an assumption, Kaggle's documentation does not state a
number for T4 x 2 sessions). A kernel's hours count against the week in which it starts.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from steelkit import budget
from steelkit.errors import UserError
from steelkit.recipe import override, preset
from steelkit_kaggle import settings

WEEK_HOURS = 7 * 24


def recipe_of(kernel: dict):
    """The training recipe a training kernel runs (its preset, fold and overrides)."""
    parameters = kernel["parameters"]
    return override(preset(parameters["PRESET"]), [f"fold={parameters['FOLD']}", *parameters.get("OVERRIDES", [])])


def training_estimate(kernel: dict, campaign: dict, rates: budget.Rates | None = None) -> budget.TrainingEstimate:
    """A training kernel's whole run (every part of it) on Kaggle's T4s (``rates``: measured ones)."""
    recipe = recipe_of(kernel)
    images = campaign.get("train_images", 12568)
    valid = images // recipe.n_folds
    pseudo = campaign.get("pseudo_images", 0) if kernel["parameters"].get("PSEUDO_LABELS") else 0
    return budget.estimate_training(recipe, images - valid + pseudo, valid, rates=rates)


def parts_of(campaign: dict, rates: budget.Rates | None = None):
    """For ``settings.load``: a GPU training kernel's epochs per session when one session cannot hold it."""
    def parts(kernel: dict):
        if not kernel["gpu"]:
            return None
        split = training_estimate(kernel, campaign, rates).parts(budget.SESSION_HOURS)
        return split if len(split) > 1 else None
    return parts


def load(path: Path = settings.SETTINGS, rates: budget.Rates | None = None) -> dict:
    """kernels.json expanded, with every kernel longer than a session split into parts; ``rates`` (a GPU
    check's, ``budget.read_rates``) replace the estimated throughputs in the split and in every kernel's
    hours (``config["rates"]``)."""
    try:
        campaign = json.loads(Path(path).read_text()).get("campaign", {})
    except (OSError, ValueError) as error:
        raise settings.SettingsError(f"{path}: {error}") from None
    config = settings.load(path, parts_of(campaign, rates))
    config["rates"] = rates or budget.ESTIMATED
    return config


def gpu_hours(kernel: dict, config: dict) -> float:
    """A kernel's estimated GPU hours (0 for a CPU kernel)."""
    if not kernel["gpu"]:
        return 0.0
    campaign, source = config.get("campaign", {}), Path(kernel["source"]).name
    rates = config.get("rates")
    if source.startswith("train_"):
        whole = training_estimate(kernel, campaign, rates)
        if "part" not in kernel:
            return whole.hours
        last = settings.is_last_part(kernel)
        return (whole.startup + kernel["epochs"] * whole.epoch + (whole.final if last else 0)) / 3600
    members = [settings.find(config, s.split("/", 1)[-1]) for s in kernel["kernels"]]
    recipes = [recipe_of(m) for m in members if "PRESET" in m["parameters"]]
    if source == "tune.py":
        images = campaign.get("train_images", 12568)
        held = [(r, images // r.n_folds) for r in recipes]
        return budget.estimate_tuning(held, images, kernel.get("budget", {}).get("tta", 3), rates=rates) / 3600
    if source == "submission.py":
        spec = kernel.get("budget", {})
        return budget.estimate(recipes, spec.get("test_images", campaign.get("test_images", 5506)),
                               spec.get("tta", 3), rates=rates).minutes / 60
    return 0.0


def schedule(items: list[tuple[str, float, list[str]]], quota_hours: float, sessions: int,
             first_week_hours: float | None = None) -> dict:
    """Place (slug, hours, the slugs it waits for) in dependency order -> slug: (start, end, week) in hours
    from now: each starts after what it waits for, with at most ``sessions`` running at once, and only in a
    week whose quota still holds it: ``first_week_hours`` (what is left of this week's quota; default the whole
    quota), then ``quota_hours`` a week."""
    if sessions < 1 or quota_hours <= 0:
        raise UserError(f"sessions {sessions} and quota {quota_hours} h: both must be above 0")
    first = quota_hours if first_week_hours is None else max(first_week_hours, 0.0)
    placed: dict[str, tuple[float, float, int]] = {}
    used: dict[int, float] = defaultdict(float)
    for slug, hours, waits in items:
        if hours > quota_hours:
            raise UserError(f"{slug}: {hours:.1f} GPU hours, more than the weekly quota of {quota_hours:.1f} h")
        start = max([placed[w][1] for w in waits if w in placed], default=0.0)
        while True:
            week = int(start // WEEK_HOURS)
            if used[week] + hours > (first if week == 0 else quota_hours) + 1e-9:
                start = (week + 1) * WEEK_HOURS
                continue
            busy = [p for p in placed.values() if p[0] < start + hours and p[1] > start] if hours else []
            points = [start] + [p[0] for p in busy if p[0] > start]
            if all(sum(p[0] <= x < p[1] for p in busy) < sessions for x in points):
                break
            start = min(p[1] for p in busy if p[1] > start)
        placed[slug] = (start, start + hours, week)
        used[week] += hours
    return placed


def plan(config: dict, chosen: list[dict], quota: dict | None = None, sessions: int | None = None) -> dict:
    """The campaign of ``chosen`` (with what they wait for among them), in dependency order, with hours,
    the total and the schedule. ``quota``: what ``kaggle quota`` said ({"remaining", "total", "refresh"}),
    else kernels.json's assumed weekly hours."""
    campaign = config.get("campaign", {})
    order = settings.push_order(config, chosen)
    names = {k["slug"] for k in order}
    rows = []
    for kernel in order:
        waits = [d["slug"] for d in settings.dependencies(config, kernel) if d["slug"] in names]
        rows.append({"kernel": kernel, "hours": gpu_hours(kernel, config), "waits": waits})
    weekly = quota["total"] if quota else campaign.get("weekly_quota_hours", 30.0)
    sessions = sessions or campaign.get("gpu_sessions", 2)
    placed = schedule([(r["kernel"]["slug"], r["hours"], r["waits"]) for r in rows], weekly, sessions,
                      quota["remaining"] if quota else None)
    return {"rows": rows, "total": sum(r["hours"] for r in rows), "weekly": weekly, "sessions": sessions,
            "quota": quota, "placed": placed, "rates": config.get("rates") or budget.ESTIMATED}


def format_plan(result: dict) -> str:
    """The plan as a person reads it: one line per kernel, the total, the weeks."""
    lines = [f"{'round':>5}  {'kernel':<46} {'preset':<19} {'fold':>4} {'GPU h':>6} {'part':>5}  attaches"]
    for row in result["rows"]:
        kernel = row["kernel"]
        part = "{}/{}".format(*kernel["part"]) if "part" in kernel else "1/1"
        inputs = [s.split("/", 1)[-1] for s in kernel["datasets"] + kernel["kernels"]]
        attaches = ", ".join(inputs[:3]) + (f" and {len(inputs) - 3} more" if len(inputs) > 3 else "") or "-"
        lines.append(f"{kernel.get('round', '-')!s:>5}  {kernel['slug']:<46} "
                     f"{kernel['parameters'].get('PRESET', '-'):<19} {kernel['parameters'].get('FOLD', '-')!s:>4} "
                     f"{row['hours']:6.2f} {part:>5}  {attaches}")
    quota = result["quota"]
    said = (f"kaggle quota: {quota['remaining']:.1f} h of {quota['total']:.1f} h left this week, refreshes "
            f"{quota['refresh'] or 'at an unknown time'}; the first week is planned on the {quota['remaining']:.1f} h "
            f"left, later weeks on {quota['total']:.1f} h" if quota else
            f"kaggle quota did not answer: {result['weekly']:.0f} h a week assumed")
    weeks = max((p[2] for p in result["placed"].values()), default=0) + 1
    lines += ["", f"total: {result['total']:.1f} GPU hours for {len(result['rows'])} kernels ({said}); "
                  f"{weeks} week{'s' if weeks > 1 else ''} at {result['sessions']} GPU sessions at once "
                  "(an assumption, kernels.json's campaign.gpu_sessions)",
              f"GPU throughputs: {result['rates'].how}"
              + (" (--rates gpu-check.json replaces them with measured ones)"
                 if result["rates"] is budget.ESTIMATED else "")]
    for week in range(weeks):
        slugs = [s for s, p in result["placed"].items() if p[2] == week]
        hours = sum(r["hours"] for r in result["rows"] if r["kernel"]["slug"] in slugs)
        gpu = [s for s in slugs if next(r for r in result["rows"] if r["kernel"]["slug"] == s)["hours"] > 0]
        lines.append(f"week {week + 1}: {len(gpu)} GPU kernels, {hours:.1f} GPU h, "
                     f"ends after {math.ceil(max((result['placed'][s][1] for s in slugs), default=0))} h: "
                     + (", ".join(gpu) if len(gpu) <= 6 else ", ".join(gpu[:3]) + f" ... {gpu[-1]}"))
    return "\n".join(lines)
