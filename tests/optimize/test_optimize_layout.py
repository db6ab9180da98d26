"""Optimal inputs for the regions of a post-hoc layout (optimize_run(layout=...), docs/layouts.md)."""

from __future__ import annotations

import json
import shutil

import numpy as np


def test_optimize_uses_the_units_at_a_layouts_region_cells(tiny_run, tiny_corpus, tmp_path):
    from toposcope.analysis.layouts import layout_run
    from toposcope.analysis.maps import maps_run
    from toposcope.analysis.profiles import profile_run
    from toposcope.optimize.render import OptimizeConfig
    from toposcope.optimize.run import optimize_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("profiles", "layouts", "maps*", "optimal*"))
    lay = layout_run(run, tiny_corpus.root, layer="conv2", method="assign", progress=False)["conv2"]
    profile_run(run, tiny_corpus.root, split="test", progress=False)
    maps_run(run, layout="assign", n_permutations=200, label_permutations=0, plots=False, progress=False)
    regions = json.loads((run / "maps-assign" / "regions.json").read_text())["conv2"]
    group = sorted(g for g in regions if g != "sil")[0]
    s = optimize_run(run, layers=["conv2"], groups=[group], data=tiny_corpus.root, max_utterances=4,
                     config=OptimizeConfig(steps=3), retries=0, images=False, audio=False, progress=False,
                     layout="assign")
    assert (run / "optimal-assign" / "summary.json").is_file() and not (run / "optimal").exists()
    cells = [int(c) for c in regions[group]["filters"]]
    units = [int(u) for u in lay.unit_of_cell[cells]]
    assert s["regions"][0]["filters"] == units and units != cells
    summary = json.loads((run / "optimal-assign" / "conv2" / group / "summary.json").read_text())
    singles = [t for t in summary["targets"] if "filter" in t]
    assert [t["filter"] for t in singles] == units
    assert [tuple(t["position"]) for t in singles] == [divmod(c, lay.grid.cols) for c in cells]
    assert np.all(np.isfinite([t["activation"] for t in summary["targets"]]))
