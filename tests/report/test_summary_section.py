"""The run summary section (report/sections/summary.py): the model table's layer text and parameter count."""

from __future__ import annotations

from toposcope.config import config_from_dict, load_config
from toposcope.model import Wav2Letter
from toposcope.report.reader import RunData
from toposcope.report.sections.summary import _layers_text, _n_params, curves


def test_parameter_count_is_the_models_with_and_without_a_frontend():
    # tiny has norm = "none", so every parameter is a conv weight or bias (BatchNorm is not counted)
    plain = load_config("tiny").to_dict()
    front = {**plain, "frontend": {"channels": 2, "kernel": [3, 5], "pool": 4}}
    for cfg in (plain, front):
        m = Wav2Letter(config_from_dict(cfg).model)
        assert _n_params(cfg) == sum(p.numel() for p in m.parameters())
    # by hand: the front end adds 2 * (3 * 5 + 1) = 32; conv1 reads 2 * (32 // 4) = 16 channels instead of 32
    assert _n_params(front) - _n_params(plain) == 32 + 64 * 5 * (16 - 32)
    assert _layers_text(plain).startswith("conv1: 64×k5 s2 [8×8]")
    assert _layers_text(front).startswith("2-D front end: 2×k3×5, mel max-pool 4; conv1: 64×k5 s2 [8×8]")


def test_a_phone_head_is_named_and_not_counted():
    plain = load_config("tiny").to_dict()
    ph = {**plain, "phone_head": {"layer": "conv2", "weight": 0.5}}
    m = Wav2Letter(config_from_dict(ph).model)
    head = sum(p.numel() for p in m.phone_head.parameters())
    assert head == 40 * 64 + 40  # conv2 has 64 filters; k=1 to the 40 phones
    assert _n_params(ph) == _n_params(plain) == sum(p.numel() for p in m.parameters()) - head
    assert _layers_text(ph).endswith("; phone head on conv2 (training only, weight 0.5)")
    assert "phone head" not in _layers_text(plain)


def test_the_phone_head_curve_appears_only_for_runs_that_log_it(tmp_path):
    line = {"kind": "train", "ctc": 2.0, "topo": 0.1, "similarity": {"conv1": 0.5}}
    plain = RunData(path=tmp_path, label="plain", train_lines=[{**line, "step": s} for s in (10, 20)])
    assert "phone head cross-entropy" not in curves([plain])
    head = RunData(path=tmp_path, label="head",
                   train_lines=[{**line, "step": s, "phone": p} for s, p in ((10, 3.5), (20, 1.25))])
    html = curves([head, plain])
    assert "phone head cross-entropy (training)" in html and "head phone CE" in html and "plain phone CE" not in html
