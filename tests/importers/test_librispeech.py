"""LibriSpeech + MFA TextGrids (toposcope.importers.librispeech) on a small tree built here."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from toposcope.cli import main as cli_main
from toposcope.corpus import Corpus
from toposcope.importers.common import ImporterError
from toposcope.importers.librispeech import import_librispeech, split_of_subset

SR = 16000


def _textgrid(path, words, phones, xmax):
    from praatio import textgrid as tgio
    from praatio.utilities.constants import Interval

    tg = tgio.Textgrid()
    tg.addTier(tgio.IntervalTier("words", [Interval(*w) for w in words], 0, xmax))
    tg.addTier(tgio.IntervalTier("phones", [Interval(*p) for p in phones], 0, xmax))
    path.parent.mkdir(parents=True, exist_ok=True)
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True)


# (subset, speaker, chapter, utt): every utterance says "hi there" in 1.0 s
TREE = [("train-clean-5", "19", "198", "0000"), ("train-clean-5", "19", "198", "0001"),
        ("train-clean-5", "26", "495", "0000"), ("dev-clean-2", "84", "121", "0000"),
        ("test-clean", "61", "70968", "0000")]
PHONES = [(0.0, 0.1, ""), (0.1, 0.25, "HH"), (0.25, 0.4, "AY1"), (0.4, 0.45, "sp"), (0.45, 0.55, "DH"),
          (0.55, 0.7, "EH1"), (0.7, 0.8, "R"), (0.8, 1.0, "spn")]


def _tree(root, *, unaligned=("26-495-0000",)):
    rng = np.random.default_rng(0)
    for subset, spk, chap, utt in TREE:
        d = root / "LibriSpeech" / subset / spk / chap
        d.mkdir(parents=True, exist_ok=True)
        uid = f"{spk}-{chap}-{utt}"
        sf.write(d / f"{uid}.flac", (0.1 * rng.standard_normal(SR)).astype(np.float32), SR, format="FLAC")
        with open(d / f"{spk}-{chap}.trans.txt", "a") as f:
            f.write(f"{uid} HI THERE\n")
        if uid not in unaligned:
            _textgrid(root / "mfa" / spk / chap / f"{uid}.TextGrid", [(0.1, 0.4, "hi"), (0.45, 0.8, "there")],
                      PHONES, 1.0)
    return root / "LibriSpeech", root / "mfa"


def test_layout_stress_silence_splits_and_unaligned(tmp_path, capsys):
    src, ali = _tree(tmp_path)
    assert cli_main(["import", "librispeech", str(src), "--alignments", str(ali), "--out", str(tmp_path / "out"),
                     "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "26-495-0000" in printed and "no TextGrid" in printed  # reported, skipped without --skip-bad
    c = Corpus.load(tmp_path / "out")
    assert sorted(u.id for u in c) == ["19-198-0000", "19-198-0001", "61-70968-0000", "84-121-0000"]
    u = next(u for u in c if u.id == "19-198-0000")
    assert u.speaker == "19" and u.text == "hi there" and u.duration == pytest.approx(1.0)
    assert u.phones == [(0.0, 0.1, "sil"), (0.1, 0.25, "hh"), (0.25, 0.4, "ay"), (0.4, 0.45, "sil"),
                        (0.45, 0.55, "dh"), (0.55, 0.7, "eh"), (0.7, 0.8, "r"), (0.8, 1.0, "sil")]
    assert [lab for *_, lab in u.source_phones] == ["", "HH", "AY1", "sp", "DH", "EH1", "R", "spn"]
    assert [w for *_, w in u.words] == ["hi", "there"]
    splits = {u.id: u.split for u in c}
    assert splits == {"19-198-0000": "train", "19-198-0001": "train", "84-121-0000": "valid", "61-70968-0000": "test"}
    # FLAC decoded directly: the samples survive (PCM16 both ways)
    ref, _ = sf.read(src / "train-clean-5" / "19" / "198" / "19-198-0000.flac", dtype="float32")
    got, _ = sf.read(c.audio_path(u), dtype="float32")
    assert np.array_equal(ref, got)


def test_one_subset_gets_speaker_disjoint_splits(tmp_path):
    src, ali = _tree(tmp_path, unaligned=())
    res = import_librispeech(src / "train-clean-5", tmp_path / "out", alignments=ali, valid_fraction=0.34,
                             test_fraction=0.0, progress=False)
    by_spk = {}
    for u in res.utterances:
        by_spk.setdefault(u.speaker, set()).add(u.split)
    assert set(by_spk) == {"19", "26"} and all(len(v) == 1 for v in by_spk.values())
    assert sorted(s for v in by_spk.values() for s in v) == ["train", "valid"]
    sub = import_librispeech(src, tmp_path / "only-dev", alignments=ali, subsets=["dev-clean-2"], progress=False)
    assert [u.id for u in sub.utterances] == ["84-121-0000"]


def test_bad_input_names_the_file(tmp_path):
    src, ali = _tree(tmp_path, unaligned=())
    trans = src / "dev-clean-2" / "84" / "121" / "84-121.trans.txt"
    trans.write_text("84-121-0000 HI THERE\nBROKENLINE\n")
    with pytest.raises(ImporterError, match=str(trans) + ":2"):
        import_librispeech(src, tmp_path / "out", alignments=ali, progress=False)
    trans.write_text("84-121-0000 HI THERE\n")
    grid = ali / "19" / "198" / "19-198-0001.TextGrid"
    grid.write_text(grid.read_text().replace('"AY1"', '"XX9"'))
    with pytest.raises(ValueError, match="XX9"):
        import_librispeech(src, tmp_path / "out", alignments=ali, progress=False)
    res = import_librispeech(src, tmp_path / "out", alignments=ali, skip_bad=True, progress=False)
    assert [s.id for s in res.skipped] == ["19-198-0001"]
    assert not (tmp_path / "nothing").exists()
    with pytest.raises(ImporterError, match="trans.txt"):
        import_librispeech(tmp_path / "mfa", tmp_path / "nothing", alignments=ali, progress=False)
    assert split_of_subset("dev-other") == "valid" and split_of_subset("test-clean") == "test"
    assert split_of_subset("train-other-500") == "train" and split_of_subset("mine") is None
