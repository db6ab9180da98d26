"""report/reader.py: the public run-directory reader and its tolerant stats accessors."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from toposcope.report.reader import (RunData, load_run_data, moran_of, similarity_of, stat_block, stat_value,
                                     stats_layers)

TINY = (resources.files("toposcope") / "configs" / "tiny.toml").read_text(encoding="utf-8")


def fake_run(d):
    d.mkdir(parents=True)
    (d / "config.toml").write_text(TINY)
    lines = [{"kind": "train", "step": 1, "ctc": 3.0}, {"kind": "valid", "step": 1, "cer": 0.9},
             {"kind": "train", "step": 2, "ctc": 2.5}]
    (d / "metrics.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines) + '{"kind": "tra')  # cut short
    (d / "eval").mkdir()
    (d / "eval" / "test.json").write_text(json.dumps({"cer": 0.25, "wer": 0.5}))
    (d / "maps").mkdir()
    (d / "maps" / "stats.json").write_text(json.dumps(
        {"layers": {"conv1": {"s_bar": {"observed": 0.8, "mean": 0.1}, "share_phone_specific": 0.5,
                              "groups": {"aa": {"morans_i": 0.2}, "bad": 3}},
                    "conv2": {"s_bar": None, "share_phone_specific": None}, "junk": 7}}))
    (d / "optimal" / "conv2" / "aa").mkdir(parents=True)
    (d / "optimal" / "conv2" / "aa" / "summary.json").write_text(json.dumps({"layer": "conv2"}))
    (d / "optimal" / "conv2" / "aa" / "joint.wav").write_bytes(b"RIFF")
    return d


def test_load_run_data_reads_what_is_there(tmp_path):
    rd = load_run_data(fake_run(tmp_path / "r"), "mine")
    assert isinstance(rd, RunData) and rd.label == "mine"
    assert rd.topo_weight == 0.01 and rd.lambda_label == "λ = 0.01"
    assert rd.layer_names == ["conv1", "conv2", "conv3"]
    assert [l["step"] for l in rd.train_lines] == [1, 2] and len(rd.valid_lines) == 1  # the cut line is skipped
    assert rd.evals == {"test": {"cer": 0.25, "wer": 0.5}}
    assert rd.profiles is None and rd.regions is None and rd.filter_pngs == []
    assert rd.grid("conv3") == (8, 4) and rd.grid("conv9") is None
    assert [(o["layer"], o["group"], sorted(o["wavs"])) for o in rd.optimal] == [("conv2", "aa", ["joint"])]
    assert set(rd.stats_layers) == {"conv1", "conv2"}


def test_corrupt_files_are_errors_naming_the_file(tmp_path):
    d = fake_run(tmp_path / "r")
    (d / "maps" / "stats.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"stats\.json: not valid JSON"):
        load_run_data(d)
    (d / "maps" / "stats.json").unlink()
    (d / "config.toml").write_text("x = [")
    with pytest.raises(ValueError, match=r"config\.toml: invalid TOML"):
        load_run_data(d)


def test_stats_accessors_tolerate_old_and_odd_entries():
    st = {"layers": {"conv1": {"s_bar": {"observed": 0.8}, "label_null": {"mean": 1.0},
                               "share_phone_specific": float("nan"), "share_clustered": 0.25,
                               "groups": {"aa": {"p": 0.1}, "x": None}}, "bad": []}}
    layers = stats_layers(st)
    assert list(layers) == ["conv1"]
    e = layers["conv1"]
    assert similarity_of(e) == {"observed": 0.8}
    assert stat_block(e, "label_null") is None  # no "observed"
    assert stat_block(e, "label_null", need="mean") == {"mean": 1.0}
    assert stat_value(e, "share_phone_specific") is None and stat_value(e, "share_clustered") == 0.25
    assert stat_value(e, "absent") is None and stat_value(None, "x") is None
    assert moran_of(e) == {"aa": {"p": 0.1}}
    assert stats_layers(None) == {} and stats_layers({"layers": 3}) == {}
