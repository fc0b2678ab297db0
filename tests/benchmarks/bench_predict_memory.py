"""Peak RSS of ``python -m steelkit predict`` on 100 and on 1,000 test images: streaming keeps it flat."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from steelkit import checkpoint, synthetic
from steelkit.models import build_model
from steelkit.predict import InferenceConfig
from steelkit.recipe import preset

SHAPE = (128, 800)
PEAK_RSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident memory of ``command`` in MB, measured in a fresh process that runs only it."""
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, *command], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        recipe = preset("seg-tiny")
        model = build_model(recipe)
        checkpoint.save(tmp / "seg" / "best.pt", {"model": model.state_dict(), "recipe": json.loads(recipe.to_json())})
        InferenceConfig(num_workers=2, batch_size=8).save(tmp / "inference.json")
        peaks = {}
        for n in (100, 1000):
            data = synthetic.make(tmp / f"data{n}", synthetic.SynthConfig(n_train=1, n_test=n, height=SHAPE[0],
                                                                        width=SHAPE[1], seed=n))
            peaks[n] = peak_rss_mb([sys.executable, "-m", "steelkit", "predict", "--data", str(data), "--segmenters",
                                    str(tmp / "seg"), "--config", str(tmp / "inference.json"), "--device", "cpu",
                                    "--out", str(tmp / f"sub{n}.csv"), "--truth", str(tmp / "none.csv")])
    ratio = peaks[1000] / peaks[100]
    return [{"benchmark": f"predict peak RSS, 1000 vs 100 images {SHAPE[0]}x{SHAPE[1]}", "ours": peaks[1000],
             "reference": peaks[100], "unit": "MB", "ratio": ratio, "target": "<= 1.10x", "ok": ratio <= 1.10}]
