"""The demo's report page, rendered in a real headless browser: every image shown, no request off the machine."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steelkit import figures, overlay
from steelkit_kaggle import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GET_CHROMIUM = "Debian's chromium renders the report (apt-get install chromium, as root; .ci/run does)"


def need_browser() -> str:
    """The browser, or the test skipped where none is installed; under CI (``CI=true``) a missing browser
    fails, so that the check runs where .ci/run installed it."""
    if CHROMIUM:
        return CHROMIUM
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"no chromium under CI: {GET_CHROMIUM}")
    pytest.skip(f"no chromium here: {GET_CHROMIUM}")


@pytest.fixture
def page(tmp_path):
    history = pd.DataFrame({"epoch": [1, 2, 3], "lr": [1e-3, 5e-4, 1e-4], "train_loss": [0.9, 0.5, 0.3],
                            "val_loss": [1.0, 0.7, 0.5], "score": [0.8, 0.85, 0.9],
                            **{f"f1_{k}": [0.2, 0.5, 0.6] for k in (1, 2, 3, 4)}})
    (tmp_path / "steelkit-demo-train-classifier" / "cls-tiny-fold0").mkdir(parents=True)
    curves = figures.training_curves(history, tmp_path / "steelkit-demo-train-classifier" / "cls-tiny-fold0" /
                                     "curves.png")
    curve = {"pixel": {"grid": [0.3, 0.5], "dice": [0.8, 0.9], "seed": 0.55, "chosen": 0.5},
             "min_total": {"grid": [0, 600], "dice": [0.7, 0.9], "seed": 600, "chosen": 600}}
    (tmp_path / "steelkit-demo-submission").mkdir()
    search = figures.threshold_search([curve] * 4, tmp_path / "steelkit-demo-submission" / "thresholds.png")
    picture = tmp_path / "overlay.png"
    image = overlay.draw(np.full((64, 320, 3), 90, np.uint8), None, np.pad(np.ones((4, 20, 40), np.uint8),
                                                                           ((0, 0), (10, 34), (30, 250))))
    import cv2

    cv2.imwrite(str(picture), image)
    scores = {"mean": 0.9, **{f"class_{k}": 0.85 + 0.01 * k for k in (1, 2, 3, 4)}}
    return report.write(tmp_path / "out" / "report.html", {"round 1": scores, "round 2": scores},
                        {k: v - 0.05 for k, v in scores.items()}, [curves], [search], {"round 1": 7},
                        [picture], 400.0)


def test_the_report_is_self_contained(page):
    text = page.read_text()
    assert "Kaggle mean Dice" in text and "round 2" in text and "round 1: 7 test images chosen" in text
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(href|src)=\"(https?:)?//", text), "nothing fetched from anywhere"


BLINK_RESOURCE_LOADER = 101845102  # the traffic annotation of a page's own requests in Chromium's net log


def render(page: Path, scratch: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium -> (the DOM after load, the URLs the page itself requested).
    Chromium's own background requests (clock, account checks) carry other annotations and are left out."""
    browser = need_browser()
    netlog = scratch / "net.json"
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={scratch / 'profile'}", f"--log-net-log={netlog}",
                           "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert netlog.is_file(), "Chromium wrote no net log"
    return done.stdout, re.findall(rf'"traffic_annotation":{BLINK_RESOURCE_LOADER},"url":"([^"]+)"', netlog.read_text())


def test_the_report_renders_in_a_headless_browser_with_every_image_and_no_request_off_the_machine(page, tmp_path):
    dom, requests = render(page, tmp_path / "report")
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded and loaded[1] == loaded[2] == "4", dom[:500]
    assert [u for u in requests if not u.startswith(("data:", "file:"))] == []


def test_the_browser_check_sees_a_page_that_reaches_out(tmp_path):
    planted = tmp_path / "planted.html"
    planted.write_text('<html><body><img src="http://198.51.100.7/x.png"></body></html>')
    _, requests = render(planted, tmp_path / "planted")
    assert requests == ["http://198.51.100.7/x.png"]


def test_a_missing_browser_skips_on_a_users_machine_and_fails_under_ci(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        need_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no chromium under CI"):
        need_browser()
