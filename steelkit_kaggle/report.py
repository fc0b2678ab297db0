"""``demo-output/report.html``: one self-contained page of the rehearsal (every image embedded as a data
URI, no script or style from anywhere, readable with the network off): the Dice of both rounds beside the
all-empty baseline as a table and a bar chart, every model's training curves, the threshold search, the
pseudo-labelled images per round, and a sample of overlay pictures."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from steelkit import atomic, figures

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd;margin:4px 0}
figure{margin:1em 0}figcaption{color:#555;font-size:90%}"""
# after load, the page records how many of its images decoded: what the browser test reads
CHECK = """window.addEventListener('load',function(){var i=document.images,n=0;
for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0){n++;}}
document.body.setAttribute('data-images-loaded',n+'/'+i.length);});"""


def embed(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def score_table(rounds: dict[str, dict], baseline: dict) -> str:
    keys = ["mean", "class_1", "class_2", "class_3", "class_4"]
    head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in keys)
    rows = [f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{scores[k]:.5f}</td>" for k in keys) + "</tr>"
            for name, scores in {**rounds, "all-empty": baseline}.items()]
    return f"<table><tr><th>submission</th>{head}</tr>{''.join(rows)}</table>"


def write(out: Path, rounds: dict[str, dict], baseline: dict, curves: list[Path], threshold_figures: list[Path],
          pseudo_counts: dict[str, int], overlays: list[Path], seconds: float) -> Path:
    """Write ``out`` (report.html) from the rehearsal's figures; returns its path."""
    bars = figures.score_bars(rounds, baseline, out.with_name("scores.png"))
    parts = [f"<h1>steelkit rehearsal</h1><p>The demo chain, run offline in the Kaggle-like environment in "
             f"{seconds / 60:.1f} minutes, scored against the synthetic competition's hidden truth.</p>",
             "<h2>Kaggle mean Dice</h2>", score_table(rounds, baseline), embed(bars, "Dice per class, both rounds"),
             "<h2>Pseudo labels</h2><ul>"
             + "".join(f"<li>{html.escape(k)}: {v} test images chosen</li>" for k, v in pseudo_counts.items())
             + "</ul>", "<h2>Training curves</h2>"]
    parts += [embed(path, f"{path.parent.parent.name}/{path.parent.name}") for path in curves]
    parts.append("<h2>Threshold search</h2>")
    parts += [embed(path, path.parent.name) for path in threshold_figures]
    parts.append("<h2>Overlays (truth thick, prediction thin)</h2>")
    parts += [embed(path, path.stem) for path in overlays]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>steelkit rehearsal</title>"
            f"<style>{STYLE}</style><script>{CHECK}</script></head><body>{''.join(parts)}</body></html>")
    return atomic.write_text(out, page)


def campaign_page(out: Path, status_text: str, ledger) -> Path:
    """The campaign's page: every submission's local CV beside its public and private scores, per class CV,
    and the kernels' states as ``status`` prints them."""
    keys = ["time", "kernel", "version", "cv", "public", "private", "cv_class_1", "cv_class_2", "cv_class_3",
            "cv_class_4", "status"]
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(row[k]) or '-')}</td>" for k in keys) + "</tr>"
                   for _, row in ledger.iterrows())
    head = "".join(f"<th>{html.escape(k.replace('_', ' ').replace('cv', 'local CV'))}</th>" for k in keys)
    table = f"<table><tr>{head}</tr>{rows}</table>" if rows else "<p>No submissions yet.</p>"
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>steelkit campaign</title>"
            f"<style>{STYLE}</style></head><body><h1>steelkit campaign</h1>"
            f"<h2>Local CV against the leaderboard</h2>{table}<h2>Kernels</h2><pre>{html.escape(status_text)}</pre>"
            "</body></html>")
    return atomic.write_text(out, page)
