"""report/html.py: numbers, escaping and embedding helpers."""

from __future__ import annotations

import base64

from toposcope.report.html import audio, finite, img, missing, num, pct, pval, round_list, script_json


def test_numbers():
    assert pct(0.1234) == "12.3 %" and pct(None) == "n/a" and pct(float("nan")) == "n/a" and pct("x") == "n/a"
    assert num(0.12345) == "0.123" and num(2, 1) == "2.0" and num(None) == "n/a"
    assert num(0.00001234) == "1.23e-05" and num(123456.0) == "1.23e+05"
    assert pval(0.0123) == "0.012" and pval(0.001) == "0.001" and pval(0.0002) == "2.0e-04" and pval(None) == "n/a"
    assert finite(1) and finite("2.5") and not finite(float("inf")) and not finite(None) and not finite(True)
    assert round_list([1.23456, float("nan"), 1e-7]) == [1.235, 0.0, 1e-7]


def test_missing_and_embeds_escape(tmp_path):
    m = missing("no <x> here", "toposcope maps 'RUN' & more")
    assert "<x>" not in m and "&lt;x&gt;" in m and "&amp; more" in m and 'class="missing"' in m
    p = tmp_path / "a.png"
    p.write_bytes(b"\x89PNG")
    tag = img(p, 'alt "<q>"')
    b64 = base64.b64encode(b"\x89PNG").decode()
    assert f'src="data:image/png;base64,{b64}"' in tag
    assert "<q>" not in tag and "&lt;q&gt;" in tag
    w = tmp_path / "a.wav"
    w.write_bytes(b"RIFF")
    assert audio(w, "</audio><script>").count("<script>") == 0
    assert "</" not in script_json({"a": "</script>"})
