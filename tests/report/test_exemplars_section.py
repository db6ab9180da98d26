"""The exemplars section (report/sections/exemplars.py): per region the optimal input, the exemplars with
players and phone labels, the phone histogram and the precisely named data maximum; escaping; missing files."""

from __future__ import annotations

import base64
import json

import numpy as np

from toposcope.audio import write_wav
from toposcope.report import RunData
from toposcope.report.context import ReportContext
from toposcope.report.sections import exemplars

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
EVIL = '<img src=x onerror=alert(1)>'


def _region(root, layer="conv2", group="th", utt=f"u1{EVIL}"):
    folder = root / "exemplars" / layer / group
    folder.mkdir(parents=True)
    (folder / "exemplars.png").write_bytes(PNG)
    write_wav(folder / "joint_0.wav", np.zeros(800, dtype=np.float32), 16000)
    ex = [{"utt": utt, "start": 0.5, "end": 1.1, "value": 2.5, "speaker": "s",
           "phones": [[0.4, 0.6, "th"], [0.6, 1.2, "iy"]], "audio": f"{layer}/{group}/joint_0.wav"}]
    hist = {"th": {"seconds": 0.1, "share": 0.4, "contains": 1, "base": 0.05, "enrichment": 8.0},
            "iy": {"seconds": 0.5, "share": 0.6, "contains": 1, "base": 0.1, "enrichment": 6.0}}
    d = {"layer": layer, "group": group, "split": "test", "n_utterances_searched": 303, "k": 8,
         "window": {"layer_frames": 25, "input_frames": 61, "seconds": 0.61},
         "targets": [{"name": "filter_3", "filter": 3, "exemplars": [], "data_max_window": None},
                     {"name": "joint", "filters": [3], "exemplars": ex, "data_max_window": 2.5,
                      "data_max_frame": {"value": 7.75, "utt": "u1", "time": 0.8}, "phone_histogram": hist}],
         "phone_histogram": hist}
    (root / "exemplars" / layer / f"{group}.json").write_text(json.dumps(d))
    (root / "exemplars" / "summary.json").write_text(json.dumps({"k": 8, "split": "test", "n_utterances_searched": 303}))


def test_section_shows_exemplars_histogram_and_names_the_data_maximum(tmp_path):
    _region(tmp_path)
    opt = tmp_path / "optimal" / "conv2" / "th"
    opt.mkdir(parents=True)
    (opt / "region.png").write_bytes(PNG)
    write_wav(opt / "joint.wav", np.zeros(800, dtype=np.float32), 16000)
    summary = {"layer": "conv2", "group": "th", "parameterization": "natural",
               "targets": [{"name": "joint", "activation": 3.0, "data_max_window": 2.5, "naturalness": 0.991}]}
    run = RunData(path=tmp_path, label="topo", optimal=[{"layer": "conv2", "group": "th", "dir": opt, "summary": summary,
                                                         "pngs": {"region": opt / "region.png"},
                                                         "wavs": {"joint": opt / "joint.wav"}}])
    html = exemplars.render(ReportContext(run=run))
    assert 'id="exemplars"' in html and "layer conv2, phone /th/" in html
    assert "best 610 ms window mean" in html and "2.500" in html and "per-frame peak 7.750" in html
    assert "over 303 utterances of the test split" in html
    assert "natural optimal inputs" in html and "naturalness ≥ 0.991" in html
    assert html.count("<audio") == 2  # the optimal input's and the exemplar's
    assert "/th iy/" in html and "8.00×" in html and "40 %" in html
    assert EVIL not in html and "&lt;img src=x" in html  # the utterance id is escaped


def test_section_without_optimal_inputs_or_exemplars(tmp_path):
    run = RunData(path=tmp_path, label="topo")
    assert "toposcope exemplars RUN" in exemplars.render(ReportContext(run=run))
    _region(tmp_path, group="s", utt="u2")
    (tmp_path / "exemplars" / "conv2" / "broken.json").write_text("{not json")
    html = exemplars.render(ReportContext(run=run))
    assert "layer conv2, phone /s/" in html and "toposcope optimize RUN --layer conv2 --group s" in html
    assert set(exemplars.scan_exemplars(tmp_path)["regions"]) == {("conv2", "s")}
