"""Lhotse in and out (toposcope.importers.lhotse): round trip, recordings + supervisions, bad input."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

pytest.importorskip("lhotse")

from toposcope.audio import read_audio, write_wav
from toposcope.cli import main as cli_main
from toposcope.corpus import Corpus
from toposcope.importers.common import ImporterError
from toposcope.importers.lhotse import export_lhotse, import_lhotse


def test_round_trip_gives_the_same_manifest(tiny_corpus, tmp_path, capsys):
    assert cli_main(["export", "lhotse", str(tiny_corpus.root), "--out", str(tmp_path / "lh"), "--no-progress"]) == 0
    cuts = tmp_path / "lh" / "cuts.jsonl.gz"
    rows = [json.loads(l) for l in gzip.open(cuts, "rt")]
    assert [r["id"] for r in rows] == [u.id for u in tiny_corpus]
    ali = rows[0]["supervisions"][0]["alignment"]
    assert [a[0] for a in ali["phone"]] == [lab for _, _, lab in tiny_corpus[0].phones]
    assert (tmp_path / "lh" / "recordings.jsonl.gz").is_file() and (tmp_path / "lh" / "supervisions.jsonl.gz").is_file()

    assert cli_main(["import", "lhotse", str(cuts), "--out", str(tmp_path / "back"), "--no-progress"]) == 0
    back = Corpus.load(tmp_path / "back")
    assert len(back) == len(tiny_corpus)
    for a, b in zip(tiny_corpus, back):
        da, db = a.to_dict(), b.to_dict()
        for key in ("phones", "words", "source_phones", "duration", "audio"):
            da.pop(key, None), db.pop(key, None)
        assert da == db
        assert b.audio == f"audio/{b.id}.wav"
        assert abs(a.duration - b.duration) < 1e-6
        for key in ("phones", "words", "source_phones"):
            sa, sb = getattr(a, key), getattr(b, key)
            assert (sa is None) == (sb is None), key
            if sa is None:
                continue
            assert [x[2] for x in sa] == [x[2] for x in sb], key
            assert np.abs(np.array([x[:2] for x in sa]) - np.array([x[:2] for x in sb])).max() <= 0.001, key
        assert np.array_equal(read_audio(tiny_corpus.audio_path(a)), read_audio(back.audio_path(b)))


def _manifests(tmp_path, sups, sr=8000, seconds=2.0):
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet
    from lhotse.supervision import AlignmentItem

    t = np.arange(int(sr * seconds)) / sr
    write_wav(tmp_path / "rec.wav", (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sample_rate=sr)
    rec = Recording.from_file(tmp_path / "rec.wav", recording_id="rec")
    segs = [SupervisionSegment(id=i, recording_id="rec", start=s, duration=d, text=txt, speaker=spk,
                               alignment=None if ph is None else {"phone": [AlignmentItem(*p) for p in ph]})
            for i, s, d, txt, spk, ph in sups]
    RecordingSet.from_recordings([rec]).to_file(tmp_path / "recs.jsonl.gz")
    SupervisionSet.from_segments(segs).to_file(tmp_path / "sups.jsonl.gz")
    return tmp_path / "recs.jsonl.gz", tmp_path / "sups.jsonl.gz"


def test_recordings_and_supervisions_stress_silence_offsets_and_resampling(tmp_path):
    recs, sups = _manifests(tmp_path, [
        # phones in recording time; the supervision starts at 0.5 s
        ("a", 0.5, 1.0, "hi there", "spk1", [("sil", 0.5, 0.1), ("HH", 0.6, 0.2), ("AY1", 0.8, 0.3), ("spn", 1.1, 0.4)]),
        ("b", 0.0, 0.4, "no phones", "spk2", None),
    ])
    with pytest.raises(ImporterError, match="no phone alignment"):
        import_lhotse(None, tmp_path / "x", recordings=recs, supervisions=sups, progress=False)
    res = import_lhotse(None, tmp_path / "out", recordings=recs, supervisions=sups, skip_bad=True, progress=False)
    assert [s.id for s in res.skipped] == ["b"] and "no phone alignment" in res.skipped[0].reason
    c = Corpus.load(tmp_path / "out")
    u = c[0]
    assert u.id == "a" and u.speaker == "spk1" and u.text == "hi there"
    assert u.duration == pytest.approx(1.0)
    assert [lab for *_, lab in u.phones] == ["sil", "hh", "ay", "sil"]
    assert [round(s, 3) for s, *_ in u.phones] == [0.0, 0.1, 0.3, 0.6]
    assert [lab for *_, lab in u.source_phones] == ["sil", "HH", "AY1", "spn"]
    assert len(read_audio(c.audio_path(u))) == 16000  # 1 s at 8 kHz -> 16 kHz


def test_missing_manifest_and_missing_arguments_are_clear(tmp_path):
    with pytest.raises(ImporterError, match="not found"):
        import_lhotse(tmp_path / "nope.jsonl.gz", tmp_path / "out", progress=False)
    with pytest.raises(ImporterError, match="--recordings and --supervisions"):
        import_lhotse(None, tmp_path / "out", progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(ImporterError, match="bad.jsonl"):
        import_lhotse(bad, tmp_path / "out", progress=False)


@pytest.mark.parametrize("bad", [("HH", float("nan"), 0.2), ("HH", 0.6, float("inf")), ("HH", 0.6, -0.1)])
def test_non_finite_or_negative_alignment_times_are_errors_not_clipped(tmp_path, bad):
    recs, sups = _manifests(tmp_path, [("a", 0.5, 1.0, "hi", "spk1", [("sil", 0.5, 0.1), bad])])
    with pytest.raises(ImporterError, match=r"supervision 'a'.*alignment\['phone'\]\[1\]"):
        import_lhotse(None, tmp_path / "out", recordings=recs, supervisions=sups, progress=False)
    assert not (tmp_path / "out").exists()
