"""The campaign's plan before the first push: hours per kernel, parts within a session, weeks within the quota."""

import json
import subprocess
import sys
from collections import defaultdict

import pytest

from steelkit import budget
from steelkit_kaggle import plan, settings

ROOT = settings.KERNELS.parent


def test_plan_lists_every_gpu_kernel_once_after_what_it_attaches():
    config = plan.load()
    gpu = [k for k in config["kernels"] if k["gpu"]]
    result = plan.plan(config, gpu, quota=None)
    order = [row["kernel"]["slug"] for row in result["rows"]]
    assert sorted(order) == sorted(k["slug"] for k in gpu) and len(order) == len(set(order))
    for kernel in gpu:
        for source in settings.dependencies(config, kernel):
            assert order.index(source["slug"]) < order.index(kernel["slug"])
    hours = {row["kernel"]["slug"]: row["hours"] for row in result["rows"]}
    seg = plan.training_estimate(settings.find(config, "steelkit-r0-train-seg-fpn-effb3-fold-0"), config["campaign"])
    assert hours["steelkit-r0-train-seg-fpn-effb3-fold-0"] == pytest.approx(seg.hours)
    assert hours["steelkit-r1-train-seg-fpn-effb3-fold-3"] < hours["steelkit-r0-train-seg-fpn-effb3-fold-3"]
    assert result["total"] == pytest.approx(sum(hours.values())) and result["weekly"] == 30
    for slug, (start, _, _) in result["placed"].items():
        for source in settings.dependencies(config, settings.find(config, slug)):
            assert result["placed"][source["slug"]][1] <= start + 1e-9


def test_a_kernel_too_long_for_a_session_is_split_into_parts_each_within_the_cap(tmp_path):
    raw = json.loads(settings.SETTINGS.read_text())
    raw["groups"][0]["parameters"]["OVERRIDES"] = ["epochs=3000"]
    (tmp_path / "k.json").write_text(json.dumps(raw))
    config = plan.load(tmp_path / "k.json")
    chain = [k for k in config["kernels"] if k.get("part_of") == "steelkit-r0-train-cls-effb1-fold-0"]
    assert len(chain) > 1 and sum(k["epochs"] for k in chain) == 3000
    for kernel in chain:
        assert plan.gpu_hours(kernel, config) <= budget.SESSION_HOURS
        assert len(kernel["title"]) <= 50
    tuning = settings.find(config, "steelkit-r0-tune-thresholds")
    assert "{user}/" + chain[-1]["slug"] in tuning["kernels"]


def test_the_weekly_schedule_never_exceeds_the_quota_it_was_given():
    config = plan.load()
    result = plan.plan(config, [k for k in config["kernels"] if k["gpu"]],
                       quota={"used": 0, "remaining": 6.0, "total": 6.0, "refresh": ""}, sessions=2)
    per_week = defaultdict(float)
    hours = {row["kernel"]["slug"]: row["hours"] for row in result["rows"]}
    for slug, (start, _, week) in result["placed"].items():
        per_week[week] += hours[slug]
        assert int(start // plan.WEEK_HOURS) == week
    assert max(per_week.values()) <= 6.0 + 1e-9 and len(per_week) >= result["total"] / 6.0
    intervals = list(result["placed"].values())
    for start, _, _ in intervals:  # never more than two sessions at once
        assert sum(s <= start < e for s, e, _ in intervals) <= 2
    text = plan.format_plan(result)
    assert "kaggle quota: 6.0 h of 6.0 h left" in text and f"week {len(per_week)}:" in text
    with pytest.raises(ValueError, match="more than the weekly quota"):
        plan.schedule([("long", 8.0, [])], 6.0, 2)


def test_the_first_week_gets_only_the_quota_left_this_week():
    config = plan.load()
    gpu = [k for k in config["kernels"] if k["gpu"]]
    fresh = plan.plan(config, gpu, quota={"used": 0, "remaining": 30.0, "total": 30.0, "refresh": ""}, sessions=2)
    spent = plan.plan(config, gpu, quota={"used": 20, "remaining": 10.0, "total": 30.0, "refresh": ""}, sessions=2)
    hours = {row["kernel"]["slug"]: row["hours"] for row in spent["rows"]}
    first = sum(hours[s] for s, (_, _, week) in spent["placed"].items() if week == 0)
    assert max(p[2] for p in fresh["placed"].values()) == 0, "a fresh week holds the 14.5 h campaign"
    assert 0 < first <= 10.0 + 1e-9 and max(p[2] for p in spent["placed"].values()) == 1
    assert "the first week is planned on the 10.0 h left, later weeks on 30.0 h" in plan.format_plan(spent)
    assert plan.schedule([("a", 4.0, []), ("b", 4.0, [])], 30.0, 1, first_week_hours=5.0)["b"][2] == 1


def build_kernel(*args):
    return subprocess.run([sys.executable, str(ROOT / "build_kernel.py"), *args], capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})


def test_the_plan_command_prints_the_campaign_and_names_a_kernel_not_in_the_matrix():
    done = build_kernel("plan")
    assert done.returncode == 0, done.stderr
    assert "steelkit-r2-submission" in done.stdout and "30 h a week assumed" in done.stdout
    assert "GPU sessions at once" in done.stdout and "week 1:" in done.stdout
    bad = build_kernel("plan", "steelkit-nothing")
    assert bad.returncode == 2 and "no kernel 'steelkit-nothing'" in bad.stderr and "Traceback" not in bad.stderr
