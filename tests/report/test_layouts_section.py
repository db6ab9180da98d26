"""The learned-vs-post-hoc section (report/sections/layouts.py) and the reader's layout statistics."""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path

from toposcope.report import RunData
from toposcope.report.context import ReportContext
from toposcope.report.reader import load_run_data
from toposcope.report.sections import layouts

TINY = tomllib.loads((resources.files("toposcope") / "configs" / "tiny.toml").read_text(encoding="utf-8"))


def _block(observed, p):
    return {"observed": observed, "mean": 0.0, "sd": 0.1, "z": observed / 0.1, "p": p, "n_permutations": 999}


def _stats(fs, sb, moran, p_label, share, layout=None, split="test"):
    entry = {"functional_similarity": _block(fs, 0.001), "s_bar": _block(sb, 0.5), "mean_morans_i": moran,
             "label_null": _block(moran, p_label), "share_phone_specific": share}
    st = {"alpha": 0.05, "profile_split": split, "layers": {"conv1": entry, "conv2": dict(entry)}}
    if layout:
        st["layout"] = layout
    return st


def _run(label, weight, stats, layout_stats=None):
    cfg = {**TINY, "train": {**TINY["train"], "topo_weight": weight}}
    return RunData(path=Path(f"/runs/{label}"), label=label, config=cfg, stats=stats, layout_stats=layout_stats or {})


def test_three_columns_same_statistics():
    topo = _run("topo", 0.01, _stats(0.812, 0.9, 0.61, 0.002, 0.4))
    som = _stats(0.444, 0.02, 0.33, 0.2, 0.05, layout={"method": "som", "fit_split": ["train"],
                                                         "judged_on_fitting_split": False})
    base = _run("base", 0.0, _stats(0.011, 0.01, 0.02, 0.5, 0.0), {"som": som})
    html = layouts.render(ReportContext(run=topo, baseline=base))
    heads = [h for h, _ in layouts.columns(ReportContext(run=topo, baseline=base))]
    assert heads == ["topo (λ = 0.01): trained grid", "base (λ = 0): identity layout",
                     "base (λ = 0): post-hoc som layout (fitted on train)"]
    assert html.startswith('<section id="layouts">') and html.endswith("</section>")
    for v in ("0.812", "0.444", "0.011", "0.610", "0.330"):
        assert v in html
    assert html.count("<tr><td class=\"l\">conv") == 2
    assert "judged on split(s): test" in html
    assert "FITTING SPLIT" not in html


def test_a_layout_judged_on_its_fitting_split_is_marked():
    som = _stats(0.9, 0.02, 0.7, 0.001, 0.9, split="train",
                 layout={"method": "som", "fit_split": ["train"], "judged_on_fitting_split": True})
    base = _run("base", 0.0, _stats(0.01, 0.01, 0.02, 0.5, 0.0), {"som": som})
    html = layouts.render(ReportContext(run=_run("topo", 0.01, None), baseline=base))
    assert "post-hoc som layout (fitted on train) — JUDGED ON THE FITTING SPLIT" in html


def test_missing_pieces_are_named():
    topo = _run("topo", 0.01, _stats(0.8, 0.9, 0.6, 0.002, 0.4))
    assert "No baseline run given" in layouts.render(ReportContext(run=topo))
    html = layouts.render(ReportContext(run=topo, baseline=_run("base", 0.0, None)))
    assert "no judged post-hoc layout" in html and "toposcope layout BASE" in html


def test_reader_loads_layout_statistics(tmp_path):
    from toposcope.checkpoint import dump_toml

    run = tmp_path / "base"
    run.mkdir()
    (run / "config.toml").write_text(dump_toml(TINY))
    (run / "layouts").mkdir()
    (run / "layouts" / "conv1-som.json").write_text("{}")
    (run / "layouts" / "conv1-assign.json").write_text("{}")
    (run / "maps-som").mkdir()
    st = _stats(0.4, 0.1, 0.3, 0.2, 0.1)
    (run / "maps-som" / "stats.json").write_text(json.dumps(st))
    rd = load_run_data(run)
    assert rd.layout_stats == {"som": st}  # assign has no maps-assign/stats.json yet
