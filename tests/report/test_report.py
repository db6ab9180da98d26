"""The HTML report: escaping, charts, sections that say what is missing, and the numbers of a real
``--quick`` demo run shown as they are in the run directories."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from toposcope.report import build_report, load_run_data, script_json, svg_line_chart


def quick_demo(tmp_path_factory) -> Path:
    """The ``--quick`` demo directory, shared by the demo, report and browser tests: the first caller
    runs the pipeline, later callers find every stage done (run_demo skips them) and only rewrite the report."""
    from toposcope.demo import run_demo

    out = tmp_path_factory.getbasetemp() / "quick-demo"
    run_demo(out, quick=True, progress=False, log=lambda m: None)
    return out


def section(page: str, sid: str) -> str:
    """The HTML of ``<section id="sid">`` (sections do not nest)."""
    start = page.index(f'<section id="{sid}">')
    return page[start:page.index("</section>", start)]


# -- pieces ----------------------------------------------------------------------------------------------
def test_script_json_cannot_close_the_script_element():
    obj = {"label": "</script><script>alert(1)</script>", "c": "<!-- x -->", "amp": "a&b", "ls": "\u2028"}
    s = script_json(obj)
    assert "</" not in s and "<!--" not in s and "<" not in s and "&" not in s
    assert json.loads(s) == obj


def test_script_json_rejects_nan():
    with pytest.raises(ValueError):
        script_json({"x": float("nan")})


def test_svg_chart_escapes_labels_and_drops_non_finite_points():
    svg = svg_line_chart([{"label": "<b>&x", "x": [0, 1, 2, 3], "y": [1.0, float("nan"), 3.0, float("inf")]}],
                         title="t<i>", xlabel="step")
    assert "<b>" not in svg and "&lt;b&gt;&amp;x" in svg and "t&lt;i&gt;" in svg
    pts = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert len(pts) == 2  # the NaN and inf points are dropped
    assert svg_line_chart([{"label": "empty", "x": [], "y": []}], title="t", xlabel="x") == ""


def test_svg_chart_thins_long_series():
    n = 5000
    svg = svg_line_chart([{"label": "s", "x": list(range(n)), "y": list(np.sin(np.arange(n) / 100))}],
                         title="t", xlabel="x", max_points=300)
    assert len(re.search(r'points="([^"]+)"', svg).group(1).split()) == 300


# -- a run with only training: the missing sections say so, hostile names are escaped -------------------------
def test_report_of_a_training_only_run_says_what_is_missing(tiny_run, tmp_path):
    hostile = tmp_path / 'run <img src=x onerror=alert(1)> & "q"'
    shutil.copytree(tiny_run, hostile)  # the session fixture holds only what training writes
    out = build_report(hostile, out=tmp_path / "r.html")
    page = out.read_text(encoding="utf-8")
    assert "<img src=x" not in page
    assert html.escape(str(hostile)) in page
    for what in ("No evaluation results", "No profiles were found", "No optimal inputs", "No maps/stats.json",
                 "No corpus was given", "No filter close-ups"):
        assert what in page, what
    # The training curves are real: the chart holds one point per "train" line of metrics.jsonl.
    lines = [json.loads(l) for l in (tiny_run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    n_train = sum(l["kind"] == "train" for l in lines)
    ctc_chart = page[page.index("CTC loss (training)"):]
    pts = re.search(r'points="([^"]+)"', ctc_chart).group(1).split()
    assert len(pts) == min(n_train, 400)
    # λ of the run's own config is shown.
    rd = load_run_data(tiny_run)
    assert f"λ = {rd.topo_weight:g}" in page


def test_report_errors_clearly_for_a_non_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        build_report(tmp_path)
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        build_report(tmp_path / "nope")


# -- the report of a real --quick demo ----------------------------------------------------------------------
@pytest.mark.slow
def test_quick_demo_report_shows_every_section_with_the_run_numbers(tmp_path_factory):
    from toposcope.maps import smooth_map
    from toposcope.profiles import load_profiles

    out = quick_demo(tmp_path_factory)
    page = (out / "report.html").read_text(encoding="utf-8")
    topo, base = out / "runs" / "topo", out / "runs" / "baseline"

    # Self-contained: no external fetches.
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)
    assert "class=\"missing\"" not in page, re.findall(r'class="missing">([^<]*)', page)
    for sec in ("summary", "topography", "maps", "optimal", "statistics"):
        assert f'<section id="{sec}">' in page

    # Accuracy: the table shows eval/test.json of both runs.
    for run in (topo, base):
        e = json.loads((run / "eval" / "test.json").read_text())
        assert f"{100 * e['cer']:.1f} %" in page and f"{100 * e['wer']:.1f} %" in page

    # S̄ against the null: as in maps/stats.json.
    st = json.loads((topo / "maps" / "stats.json").read_text())
    for layer, e in st["layers"].items():
        assert f"<td>{e['s_bar']['observed']:.3f}</td>" in page, layer

    # Maps: the embedded arrays are the profiles (and their smoothing), the regions those of regions.json.
    data = json.loads(re.search(r'<script type="application/json" id="toposcope-data">(.*?)</script>', page,
                                re.S).group(1))["maps"]
    assert [m["label"].split(" ")[0] for m in data["models"]] == ["topo", "baseline"]
    prof = load_profiles(topo / "profiles" / "gradnap-phone.npz")
    regions = json.loads((topo / "maps" / "regions.json").read_text())
    for layer, lp in prof.layers.items():
        maps = lp.maps()
        sm = smooth_map(maps)
        for gi, g in enumerate(prof.groups):
            e = data["values"]["m0"][layer][g]
            np.testing.assert_allclose(e["v"], maps[gi].ravel(), rtol=1e-3, atol=1e-9 * np.abs(maps).max())
            np.testing.assert_allclose(e["s"], sm[gi].ravel(), rtol=1e-3, atol=1e-9 * np.abs(sm).max())
            assert e["region"]["filters"] == regions[layer][g]["filters"]
            assert e["n"] == int(lp.counts[gi])
    assert set(data["values"]["m1"]) == set(data["layer_order"])

    # Optimal inputs: every WAV of every region is embedded as an audio player, every PNG as an image.
    wavs = sorted((topo / "optimal").glob("*/*/*.wav"))
    pngs = sorted((topo / "optimal").glob("*/*/*.png"))
    assert wavs and pngs
    optimal = section(page, "optimal")
    assert optimal.count('<audio controls') == len(wavs)
    assert optimal.count("data:audio/wav;base64,") == len(wavs)
    assert optimal.count("data:image/png;base64,") == len(pngs)
    # Figure 1A close-ups of both runs.
    n_filter_pngs = len(list((topo / "filters").glob("*.png"))) + len(list((base / "filters").glob("*.png")))
    assert n_filter_pngs > 0
    assert section(page, "topography").count("data:image/png;base64,") == n_filter_pngs

    # Statistics: the share of clustered phones and Moran's I of every phone, both runs.
    for run in (topo, base):
        s = json.loads((run / "maps" / "stats.json").read_text())
        for layer, e in s["layers"].items():
            assert f"{100 * e['share_clustered']:.1f} % of {len(e['groups'])}" in page
    assert page.count("Moran's I of every phone map") == len(prof.layers)
    # The phone-specific tests lead the statistics section, topo beside baseline, with generated findings.
    from toposcope.report.html import num, pval
    from toposcope.report.sections.statistics import findings

    stats_html = section(page, "statistics")
    lab = stats_html[stats_html.index("Phone-specific organization (label null)</h3>"):]
    for run in (topo, base):
        s = json.loads((run / "maps" / "stats.json").read_text())
        for layer, e in s["layers"].items():
            ln = e["label_null"]
            assert (f"<td>{100 * e['share_phone_specific']:.1f} % of {len(e['groups'])}</td><td>{num(ln['observed'])}"
                    f"</td><td>{num(ln['mean'])} ± {num(ln['sd'])}</td>") in lab, layer
            assert f">{pval(ln['p'])}</td>" in lab
    rt, rb = load_run_data(topo, "topo"), load_run_data(base, "baseline")
    sentences = findings([rt, rb], rt.layer_names)
    assert sentences and all(html.escape(t) in stats_html for t in sentences)
