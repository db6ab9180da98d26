"""``toposcope check`` (docs/method.md § Data and phones, §9): summary of a good corpus, every problem of a bad one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from toposcope.audio import write_wav
from toposcope.cli import main
from toposcope.corpus import Utterance, write_manifest
from toposcope.importers import check_corpus

SR = 16000


def make_corpus(root, n=4):
    utts = []
    for i in range(n):
        dur = 0.5 + 0.25 * i
        wave = (0.2 * np.sin(np.arange(int(dur * SR)) / 7)).astype(np.float32)
        write_wav(root / "audio" / f"u{i}.wav", wave)
        utts.append(Utterance(id=f"u{i}", audio=f"audio/u{i}.wav", speaker=f"s{i % 2}", text="a b",
                              duration=dur, phones=[(0.0, 0.1, "sil"), (0.1, dur, "aa" if i % 2 else "b")],
                              split=("train", "train", "valid", "test")[i]))
    write_manifest(root / "manifest.jsonl", utts)
    return utts


def test_check_good_corpus(tmp_path, capsys):
    make_corpus(tmp_path)
    res = check_corpus(tmp_path, progress=False)
    assert res.ok and res.problems == []
    s = res.summary
    assert s["utterances"] == 4 and s["speakers"] == ["s0", "s1"]
    assert s["hours"] == pytest.approx((0.5 + 0.75 + 1.0 + 1.25) / 3600)
    assert s["splits"]["train"]["utterances"] == 2 and s["splits"]["test"]["speakers"] == ["s1"]
    assert s["phone_counts"] == {"sil": 4, "b": 2, "aa": 2}
    assert main(["check", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "utterances 4" in out and "no problems" in out and "sil:4" in out
    assert main(["check", str(tmp_path), "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["utterances"] == 4


def test_check_collects_every_problem(tmp_path, capsys):
    make_corpus(tmp_path)
    a = tmp_path / "audio"
    (a / "u0.wav").unlink()                                                         # missing
    sf.write(str(a / "u1.wav"), np.zeros(int(0.75 * 8000), np.float32), 8000)      # wrong rate
    sf.write(str(a / "u2.wav"), np.zeros((SR, 2), np.float32), SR)                  # stereo
    (a / "u3.wav").write_bytes((a / "u3.wav").read_bytes()[:10000])                 # truncated
    with open(tmp_path / "manifest.jsonl", "a") as f:
        f.write('{"id": "u0", "audio": "audio/u1.wav", "speaker": "s", "text": "x", "duration": 1, '
                '"phones": [[0, 0.5, "aa"]]}\n')                                     # duplicate id
        f.write('{"id": "v", "audio": "audio/u1.wav", "speaker": "s", "text": "x", "duration": 1, '
                '"phones": [[0, 0.5, "aa"], [0.4, 0.9, "b"]]}\n')                    # overlap
        f.write('{"id": "w", "audio": "audio/u1.wav", "speaker": "s", "text": " ", "duration": 1, '
                '"phones": [[0, 0.5, "aa"]]}\n')                                     # empty transcript
        f.write('{"id": "x", "audio": "audio/u1.wav", "speaker": "s", "text": "x", "duration": 1, '
                '"phones": [[0, 0.5, "qq"]]}\n')                                     # unknown label
        f.write('not json\n')
    res = check_corpus(tmp_path, progress=False)
    text = "\n".join(res.problems)
    assert len(res.problems) == 9, text
    m = str(tmp_path / "manifest.jsonl")
    for expect in ["u0.wav (utterance 'u0'): audio file not found",
                   "u1.wav (utterance 'u1'): expected 16000 Hz audio, got 8000 Hz",
                   "u2.wav (utterance 'u2'): expected mono audio, got 2 channels",
                   "u3.wav (utterance 'u3'): truncated audio",
                   f"{m}:5: duplicate utterance id 'u0' (first on line 1)",
                   f"{m}:6 (utterance 'v'): phones[1] 'b' starts at 0.400 s before the previous segment ends",
                   f"{m}:7 (utterance 'w'): empty transcript",
                   f"{m}:8 (utterance 'x'): phones[0] has unknown label 'qq'",
                   f"{m}:9: invalid JSON"]:
        assert expect in text, expect
    # u2 is 1 s of stereo where the manifest says 1.0 s: no duration problem; u1 has 0.75 s: none either
    assert "audio lasts" not in text
    assert main(["check", str(tmp_path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "9 problem(s):" in out and "utterances 4" in out


def test_check_duration_mismatch_and_missing_manifest(tmp_path):
    make_corpus(tmp_path, n=1)
    line = json.loads((tmp_path / "manifest.jsonl").read_text())
    line["duration"] = 0.6
    (tmp_path / "manifest.jsonl").write_text(json.dumps(line) + "\n")
    res = check_corpus(tmp_path, progress=False)
    assert res.problems == [f"{tmp_path / 'audio' / 'u0.wav'} (utterance 'u0'): audio lasts 0.500 s "
                            f"but the manifest says 0.600 s"]
    res = check_corpus(tmp_path / "nope", progress=False)
    assert not res.ok and "corpus directory not found" in res.problems[0]
    (tmp_path / "empty").mkdir()
    assert "manifest not found" in check_corpus(tmp_path / "empty", progress=False).problems[0]


def test_check_reports_what_corpus_load_rejects(tmp_path, capsys):
    """NaN/inf numbers, escaping paths, deep JSON and non-UTF-8 lines are problems of `check` too, with the
    same message Corpus.load raises (one parser), and never "no problems"."""
    from toposcope.corpus import Corpus, CorpusError

    make_corpus(tmp_path, n=2)
    m = tmp_path / "manifest.jsonl"
    good = m.read_text().splitlines()
    bad = [json.loads(good[0]) for _ in range(4)]
    bad[0].update(id="nan", phones=[[0.0, float("nan"), "aa"]])
    bad[1].update(id="inf", duration=float("inf"))
    bad[2].update(id="esc", audio="../../../../etc/passwd")
    bad[3].update(id="abs", audio="/etc/passwd")
    lines = [json.dumps(d) for d in bad] + ["[" * 100_000]
    m.write_bytes(("\n".join(good + lines) + "\n").encode() + b'{"id": "\xff"}\n')
    res = check_corpus(tmp_path, progress=False)
    assert len(res.problems) == 6, res.problems
    for k, expect in enumerate(["phones[0] end must be a finite number, got nan",
                                "duration must be a finite number, got inf",
                                "audio path '../../../../etc/passwd' leaves the corpus folder",
                                "audio path '/etc/passwd' is absolute", "JSON nested too deeply",
                                "not UTF-8 text"]):
        assert res.problems[k].startswith(f"{m}:{k + 3}") and expect in res.problems[k], res.problems[k]
    with pytest.raises(CorpusError) as e:
        Corpus.load(tmp_path)
    assert str(e.value) == res.problems[0]  # the same parser, the same words
    assert main(["check", str(tmp_path), "--no-progress"]) == 1
    assert "no problems" not in capsys.readouterr().out


def test_check_impossible_headers_and_manifest_folder(tmp_path):
    import struct

    make_corpus(tmp_path, n=2)
    wav = tmp_path / "audio" / "u0.wav"
    b = bytearray(wav.read_bytes())
    b[24:28] = struct.pack("<I", 2147483647)  # WAV header rate 2^31 - 1 Hz
    wav.write_bytes(bytes(b))
    res = check_corpus(tmp_path, progress=False)
    assert res.problems == [f"{wav} (utterance 'u0'): the header's sample rate 2147483647 Hz cannot be true "
                            f"(allowed 1000..768000 Hz): corrupt header?"]
    (tmp_path / "manifest.jsonl").unlink()
    (tmp_path / "manifest.jsonl").mkdir()
    res = check_corpus(tmp_path, progress=False)
    assert res.problems == [f"{tmp_path / 'manifest.jsonl'}: is a folder, expected the manifest file "
                            f"(one JSON object per line)"]
