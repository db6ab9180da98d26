"""The shared helpers (toposcope._util): atomic writes, strict JSON, tolerant JSONL, stale temp files, progress."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from toposcope._util import (append_jsonl, atomic_write, jsonable, progress_enabled, read_json, read_jsonl,
                             remove_stale_temp, write_bytes_atomic, write_json_atomic, write_text_atomic)


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    write_text_atomic(p, "first")
    assert p.read_text() == "first"

    def fails(f):
        f.write(b"half of the new cont")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(p, fails)
    assert p.read_text() == "first"  # the old content, untouched
    assert sorted(x.name for x in p.parent.iterdir()) == ["f.txt"]  # no temp file left behind
    write_bytes_atomic(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"


def test_jsonable_and_strict_json(tmp_path):
    obj = {"a": np.float32(1.5), "b": np.int64(3), "c": [math.nan, math.inf, -math.inf], "d": np.array([1, 2]),
           "e": np.bool_(True), 4: (1, 2)}
    assert jsonable(obj) == {"a": 1.5, "b": 3, "c": [None, None, None], "d": [1, 2], "e": True, "4": [1, 2]}
    p = write_json_atomic(tmp_path / "x.json", obj)
    assert "NaN" not in p.read_text() and read_json(p)["c"] == [None, None, None]


def test_read_json_errors_name_the_file(tmp_path):
    assert read_json(tmp_path / "missing.json", missing_ok=True) is None
    with pytest.raises(FileNotFoundError, match=r"missing\.json: file not found"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"deep\.json: not valid JSON \(nested too deeply\)"):
        read_json(tmp_path / "deep.json")
    (tmp_path / "latin.json").write_bytes(b'"caf\xe9"')
    with pytest.raises(ValueError, match=r"latin\.json: not UTF-8"):
        read_json(tmp_path / "latin.json")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ValueError, match=r"dir\.json: is a folder"):
        read_json(tmp_path / "dir.json")


def test_jsonl_append_and_tolerant_read(tmp_path):
    p = tmp_path / "log.jsonl"
    assert read_jsonl(p) == []  # missing: nothing yet
    append_jsonl(p, {"step": 1, "x": math.nan})
    append_jsonl(p, {"step": 2, "s": "é"})
    assert p.read_text(encoding="utf-8") == '{"step": 1, "x": null}\n{"step": 2, "s": "é"}\n'
    with open(p, "a") as f:
        f.write('{"step": 3, "x"')  # a writer killed mid-line
    assert [r["step"] for r in read_jsonl(p)] == [1, 2]
    with pytest.raises(ValueError, match=r"log\.jsonl:3: not valid JSON"):
        read_jsonl(p, tolerant=False)
    with pytest.raises(FileNotFoundError, match="file not found"):
        read_jsonl(tmp_path / "none.jsonl", missing_ok=False)
    (tmp_path / "bin.jsonl").write_bytes(b'{"a": 1}\n\xff\xfe\n')
    with pytest.raises(ValueError, match=r"bin\.jsonl: not UTF-8"):
        read_jsonl(tmp_path / "bin.jsonl")


def test_remove_stale_temp_only_removes_our_temp_files(tmp_path):
    stale = [tmp_path / ".last.pt.ab12cd.tmp", tmp_path / ".x.json.zz.tmp"]
    keep = [tmp_path / "last.pt", tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for p in stale + keep:
        p.write_text("x")
    (tmp_path / ".dir.tmp").mkdir()  # a folder is not a temp file of ours
    assert sorted(remove_stale_temp(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in keep) and (tmp_path / ".dir.tmp").is_dir()
    assert remove_stale_temp(tmp_path / "absent") == []


def test_progress_switch(monkeypatch):
    monkeypatch.delenv("TOPOSCOPE_NO_PROGRESS", raising=False)
    assert progress_enabled(True) and not progress_enabled(False)
    for v in ("1", "true", "yes"):
        monkeypatch.setenv("TOPOSCOPE_NO_PROGRESS", v)
        assert not progress_enabled(True)
    monkeypatch.setenv("TOPOSCOPE_NO_PROGRESS", "0")
    assert progress_enabled(True)


def test_json_round_trip_of_nested_results(tmp_path):
    res = {"layers": {"conv1": {"p": 0.001, "values": np.arange(3, dtype=np.float64)}}}
    back = json.loads(write_json_atomic(tmp_path / "s.json", res).read_text())
    assert back == {"layers": {"conv1": {"p": 0.001, "values": [0.0, 1.0, 2.0]}}}


def test_atomic_write_gives_the_mode_open_would(tmp_path):
    import os
    import stat

    from toposcope._util import write_text_atomic

    old = os.umask(0o022)
    try:
        p = write_text_atomic(tmp_path / "m.json", "{}")
        assert stat.S_IMODE(p.stat().st_mode) == 0o644  # not mkstemp's 0600
        os.umask(0o077)
        p = write_text_atomic(tmp_path / "n.json", "{}")
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_torch_threads_sets_the_count_and_restores_it_even_on_error():
    import torch

    from toposcope._util import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
