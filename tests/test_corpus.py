"""Native corpus format (docs/method.md § Data and phones): manifest parsing/validation, round trip, splits, summary."""

from __future__ import annotations

import json
import re

import pytest

from toposcope.corpus import Corpus, CorpusError, Utterance, read_manifest, validate_segments, write_manifest


def utt(**kw):
    d = dict(id="u1", audio="audio/u1.wav", speaker="s1", text="a b", duration=1.0,
             phones=[(0.0, 0.2, "sil"), (0.2, 0.6, "aa"), (0.6, 1.0, "b")])
    d.update(kw)
    return Utterance(**d)


@pytest.mark.parametrize("segs, msg", [
    ([(0.0, 0.5, "aa"), (0.4, 0.9, "b")], r"phones\[1\] 'b' starts at 0.400 s before the previous segment ends"),
    ([(0.5, 0.9, "aa"), (0.0, 0.4, "b")], "overlap or are unsorted"),
    ([(0.0, 1.2, "aa")], r"phones\[0\] 'aa' \[0.000, 1.200\] s lies outside the audio \[0, 1.000\] s"),
    ([(-0.1, 0.5, "aa")], "outside the audio"),
    ([(0.3, 0.3, "aa")], "has end 0.300 <= start 0.300"),
    ([(0.0, 0.5, "zz")], r"phones\[0\] has unknown label 'zz'"),
    ([(0.0, 0.5, "")], "empty or non-string label"),
    ([(0.0, 0.5)], r"must be \[start_s, end_s, label\]"),
    ([(0.0, "x", "aa")], "times must be numbers"),
])
def test_validate_segments_errors(segs, msg):
    with pytest.raises(CorpusError, match=msg):
        validate_segments(segs, 1.0, "f.jsonl:3")
    with pytest.raises(CorpusError, match=r"^f\.jsonl:3: "):
        validate_segments(segs, 1.0, "f.jsonl:3")


def test_validate_segments_accepts_gaps_tolerance_and_free_words():
    validate_segments([(0.1, 0.2, "aa"), (0.3, 1.0015, "sil")], 1.0, "x")  # gap ok; 1.5 ms over ok
    validate_segments([(0.0, 0.5, "hello")], 1.0, "x", labels=None, kind="words")


@pytest.mark.parametrize("kw, msg", [
    (dict(text="  "), "empty transcript"), (dict(duration=0.0), "duration must be > 0"),
    (dict(phones=[]), "no phone segments"), (dict(split="dev"), "split must be one of train, valid, test"),
    (dict(id=""), "empty id"), (dict(words=[(0.0, 0.5, "a"), (0.2, 0.6, "b")]), r"words\[1\]"),
])
def test_utterance_validate(kw, msg):
    with pytest.raises(CorpusError, match=msg):
        utt(**kw).validate("m.jsonl:2")


def test_round_trip_keeps_unknown_fields(tmp_path):
    u = utt(words=[(0.2, 0.6, "a"), (0.6, 1.0, "b")], split="valid",
            source_phones=[(0.0, 0.2, "h#"), (0.2, 0.6, "aa"), (0.6, 1.0, "b")], extra={"corpus": "x", "n": 3})
    write_manifest(tmp_path / "m.jsonl", [u, utt(id="u2")])
    back = read_manifest(tmp_path / "m.jsonl")
    assert back[0] == u and back[1].split is None and back[1].words is None
    line = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])
    assert line["corpus"] == "x" and line["n"] == 3 and line["phones"][1] == [0.2, 0.6, "aa"]


def test_read_manifest_errors_name_the_line(tmp_path):
    m = tmp_path / "manifest.jsonl"
    good = json.dumps(utt().to_dict())
    m.write_text(good + "\n\n" + "{oops\n")
    with pytest.raises(CorpusError, match=r"manifest\.jsonl:3: invalid JSON"):
        read_manifest(m)
    m.write_text(good + "\n" + good + "\n")
    with pytest.raises(CorpusError, match=r"manifest\.jsonl:2: duplicate utterance id 'u1'"):
        read_manifest(m)
    m.write_text(json.dumps({"id": "a", "audio": "x.wav"}) + "\n")
    with pytest.raises(CorpusError, match=r"manifest\.jsonl:1: missing field\(s\) speaker, text, duration, phones"):
        read_manifest(m)
    m.write_text("[1, 2]\n")
    with pytest.raises(CorpusError, match="expected a JSON object, got list"):
        read_manifest(m)
    m.write_text(json.dumps(dict(utt().to_dict(), duration="long")) + "\n")
    with pytest.raises(CorpusError, match="malformed field"):
        read_manifest(m)
    with pytest.raises(CorpusError, match="manifest not found"):
        read_manifest(tmp_path / "none.jsonl")


def test_corpus_load_splits_summary(tmp_path):
    with pytest.raises(CorpusError, match="corpus directory not found"):
        Corpus.load(tmp_path / "missing")
    (tmp_path / "manifest.jsonl").write_text("")
    with pytest.raises(CorpusError, match="the corpus is empty"):
        Corpus.load(tmp_path)
    utts = [utt(id="a", speaker="s1"), utt(id="b", speaker="s2", split="valid", duration=2.0,
                                          phones=[(0.0, 2.0, "aa")]),
            utt(id="c", speaker="s3", split="test")]
    write_manifest(tmp_path / "manifest.jsonl", utts)
    c = Corpus.load(tmp_path)
    assert len(c) == 3 and c[1].id == "b" and [u.id for u in c] == ["a", "b", "c"]
    assert c.audio_path(c[0]) == tmp_path / "audio/u1.wav"
    assert [u.id for u in c.split("train")] == ["a"] and [u.id for u in c.split("valid")] == ["b"]
    with pytest.raises(CorpusError, match="unknown split 'dev'"):
        c.split("dev")
    s = c.summary()
    assert s["utterances"] == 3 and s["speakers"] == ["s1", "s2", "s3"]
    assert s["hours"] == pytest.approx(4.0 / 3600)
    assert s["splits"]["valid"] == {"utterances": 1, "hours": pytest.approx(2 / 3600), "speakers": ["s2"]}
    assert s["phone_counts"] == {"sil": 2, "aa": 3, "b": 2}


# ---------------------------------------------------------------- strict validation (issue 15, bad-inputs)
def _line(**kw):
    d = utt().to_dict()
    d.update(kw)
    return json.dumps(d)


@pytest.mark.parametrize("text, msg", [
    (_line(duration=float("nan")), r"duration must be a finite number, got nan"),
    (_line(duration=float("inf")), r"duration must be a finite number, got inf"),
    (_line(phones=[[0.0, float("nan"), "aa"]]), r"phones\[0\] end must be a finite number, got nan"),
    (_line(phones=[[float("-inf"), 0.5, "aa"]]), r"phones\[0\] start must be a finite number"),
    (_line(words=[[0.0, float("nan"), "a"]]), r"words\[0\] end must be a finite number"),
    (_line(phones=[[-0.001, 0.5, "aa"]]), r"phones\[0\] 'aa' \[-0.001, 0.500\] s lies outside the audio"),
    (_line(duration=1e400), "duration must be a finite number"),
    (_line(duration=10 ** 400), "duration must be a finite number, got an integer of"),
    (_line(phones=[[True, 0.5, "aa"]]), r"phones\[0\] must be \[number, number, string\]"),
    (_line(phones=[["0", "0.5", "aa"]]), r"phones\[0\] must be \[number, number, string\]"),
    (_line(phones="aa"), "phones must be a list"),
    (_line(text=["a"]), "text must be a string"),
    (_line(audio="../../../../etc/passwd"), r"audio path '../../../../etc/passwd' leaves the corpus folder"),
    (_line(audio="/etc/passwd"), r"audio path '/etc/passwd' is absolute"),
    (_line(audio="C:\\x.wav"), "is absolute"),
    (_line(audio="audio/../../x.wav"), r"leaves the corpus folder \('\.\.'\)"),
    (_line(audio=""), "audio path must be a non-empty relative path"),
    ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
    ('{"id": ' + "1" * 5000 + "}", "invalid JSON"),
    ("{NaN", "invalid JSON"),
])
def test_manifest_bad_values_name_file_and_line(tmp_path, text, msg):
    m = tmp_path / "manifest.jsonl"
    m.write_text(_line(id="ok") + "\n" + text + "\n")
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(m))}:2\b.*" + msg):
        read_manifest(m)
    with pytest.raises(CorpusError, match=msg):
        Corpus.load(tmp_path)


def test_manifest_not_utf8_folder_and_symlink_escape(tmp_path):
    m = tmp_path / "manifest.jsonl"
    m.write_bytes(_line(id="ok").encode() + b"\n" + _line(id="b").replace('"b"', '"b\xe9"').encode("latin-1") + b"\n")
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(m))}:2: not UTF-8 text"):
        Corpus.load(tmp_path)
    m.unlink()
    m.mkdir()
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(m))}: is a folder, expected the manifest file"):
        Corpus.load(tmp_path)
    m.rmdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "c"
    root.mkdir()
    (root / "audio").symlink_to(outside)
    m = root / "manifest.jsonl"
    m.write_text(_line() + "\n")
    with pytest.raises(CorpusError, match=r"manifest\.jsonl:1 \(utterance 'u1'\): audio path 'audio/u1.wav' "
                                          r"resolves to .*outside the corpus folder"):
        Corpus.load(root)
    (root / "audio").unlink()
    (root / "audio").mkdir()
    (root / "audio" / "u1.wav").symlink_to(outside / "u1.wav")  # a dangling link out: same error
    with pytest.raises(CorpusError, match="outside the corpus folder"):
        Corpus.load(root)
    (root / "audio" / "u1.wav").unlink()
    (root / "audio" / "real.wav").write_bytes(b"")
    (root / "audio" / "u1.wav").symlink_to("real.wav")  # a link that stays inside is fine
    assert Corpus.load(root)[0].audio == "audio/u1.wav"


def test_from_dict_accepts_what_to_dict_writes():
    u = utt(words=[(0.2, 0.6, "a")], split="test", source_phones=[(0.0, 1.0, "h#")], extra={"k": [1, {"x": None}]})
    assert Utterance.from_dict(json.loads(json.dumps(u.to_dict()))) == u
    assert Utterance.from_dict(dict(u.to_dict(), id=7, speaker=12)).speaker == "12"  # numeric names are fine


def test_metadata_only_load_validates_everything_but_keeps_no_alignments(tmp_path):
    utts = [utt(id="a", speaker="s1", words=[(0.0, 0.5, "hi")]), utt(id="b", speaker="s2", split="test")]
    write_manifest(tmp_path / "manifest.jsonl", utts)
    full, meta = Corpus.load(tmp_path), Corpus.load(tmp_path, alignments=False)
    assert full.alignments and not meta.alignments
    assert [u.phones for u in full] != [[], []] and [u.phones for u in meta] == [[], []]
    assert all(u.words is None and u.source_phones is None for u in meta)
    assert [(u.id, u.text, u.duration, u.split, u.speaker) for u in meta] == \
        [(u.id, u.text, u.duration, u.split, u.speaker) for u in full]
    # the alignments are still validated: a NaN phone time is an error naming file and line
    d = full[1].to_dict()
    d["phones"][0][1] = float("nan")
    (tmp_path / "manifest.jsonl").write_text(json.dumps(full[0].to_dict()) + "\n" + json.dumps(d) + "\n")
    with pytest.raises(CorpusError, match=r"manifest.jsonl:2.*finite"):
        Corpus.load(tmp_path, alignments=False)
