"""Importers (docs/method.md § Data and phones, §2.4, §9) on small fixture trees written here: TIMIT (LDC + NLTK flat,
SPHERE written byte by byte), TextGrid (praatio), Festival .lab; bad input and --skip-bad."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
import soundfile as sf

from toposcope.audio import AudioError
from toposcope.cli import main
from toposcope.corpus import Corpus, CorpusError
from toposcope.importers import (ImporterError, SphereError, import_lab, import_textgrid, import_timit,
                                 read_lab, read_label_map, read_sphere)
from toposcope.importers.common import assign_splits, fold_segments
from toposcope.phones import TIMIT_MAP, UnknownPhoneError

SR = 16000


def tone(n, sr=SR, f=220.0, amp=0.3):
    t = np.arange(n) / sr
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def pcm16(wave):
    return np.round(np.clip(wave, -1, 1) * 32767).astype(np.int16)


def write_sphere(path, samples: np.ndarray, rate=SR, *, byte_format="01", coding="pcm", count=None,
                 channels=1, truncate_to=None):
    """A NIST_1A file, header padded to 1024 bytes, int16 samples."""
    n = len(samples) // channels if count is None else count
    fields = ["database_id -s5 TIMIT", f"sample_count -i {n}", f"sample_rate -i {rate}",
              f"channel_count -i {channels}", f"sample_byte_format -s2 {byte_format}",
              "sample_n_bytes -i 2", f"sample_coding -s{len(coding)} {coding}", "sample_min -i -100",
              "end_head"]
    head = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\n").encode("ascii")
    head = head + b" " * (1024 - len(head))
    dt = "<i2" if byte_format == "01" else ">i2"
    data = np.asarray(samples, dtype=np.int16).astype(dt).tobytes()
    blob = head + data
    if truncate_to is not None:
        blob = blob[:truncate_to]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)


# ------------------------------------------------------------------------------------ SPHERE
def test_sphere_reader_little_and_big_endian(tmp_path):
    ints = np.array([0, 1, -1, 32767, -32768, 1234, -4321], dtype=np.int16)
    write_sphere(tmp_path / "le.wav", ints)
    write_sphere(tmp_path / "be.wav", ints, byte_format="10")
    for name in ("le.wav", "be.wav"):
        wave, sr = read_sphere(tmp_path / name)
        assert sr == SR and wave.shape == (7, 1)
        np.testing.assert_array_equal(wave[:, 0], ints.astype(np.float32) / 32768.0)
    # header really is 1024 bytes and the data follows it
    raw = (tmp_path / "le.wav").read_bytes()
    assert raw[:7] == b"NIST_1A" and struct.unpack("<h", raw[1024 + 6:1024 + 8])[0] == 32767


def test_sphere_errors_name_the_file(tmp_path):
    ints = pcm16(tone(1000))
    write_sphere(tmp_path / "shn.wav", ints, coding="pcm,embedded-shorten-v2.00")
    with pytest.raises(SphereError, match=r"shn\.wav.*compressed"):
        read_sphere(tmp_path / "shn.wav")
    write_sphere(tmp_path / "short.wav", ints, truncate_to=1024 + 500)
    with pytest.raises(SphereError, match=r"short\.wav: truncated SPHERE audio"):
        read_sphere(tmp_path / "short.wav")
    write_sphere(tmp_path / "ulaw.wav", ints, coding="ulaw")
    with pytest.raises(SphereError, match="ulaw"):
        read_sphere(tmp_path / "ulaw.wav")
    assert isinstance(SphereError("x"), AudioError) and isinstance(SphereError("x"), ValueError)


# ------------------------------------------------------------------------------------ folding
def test_fold_segments_timit_q_and_closures():
    segs = [(0.0, 0.1, "h#"), (0.1, 0.15, "q"), (0.15, 0.3, "ix"), (0.3, 0.35, "tcl"), (0.35, 0.4, "t"),
            (0.4, 0.45, "dx"), (0.45, 0.5, "q"), (0.5, 0.6, "h#")]
    phones, source = fold_segments(segs, TIMIT_MAP, "x.phn")
    assert source == segs
    assert phones == [(0.0, 0.1, "sil"), (0.1, 0.3, "ih"), (0.3, 0.35, "sil"), (0.35, 0.4, "t"),
                      (0.4, 0.45, "d"), (0.45, 0.6, "sil")]
    # q with no following neighbour: merged into the preceding one
    phones, _ = fold_segments([(0.0, 0.2, "ae"), (0.2, 0.3, "q")], TIMIT_MAP, "x.phn")
    assert phones == [(0.0, 0.3, "ae")]
    # q alone, or with gaps on both sides: becomes sil
    phones, _ = fold_segments([(0.0, 0.1, "ae"), (0.2, 0.3, "q"), (0.4, 0.5, "b")], TIMIT_MAP, "x.phn")
    assert phones == [(0.0, 0.1, "ae"), (0.2, 0.3, "sil"), (0.4, 0.5, "b")]
    with pytest.raises(UnknownPhoneError, match=r"x\.phn: unknown phone label 'xyz'"):
        fold_segments([(0.0, 0.1, "xyz")], TIMIT_MAP, "x.phn")


def test_assign_splits_is_deterministic_and_by_key():
    keys = [f"spk{i}" for i in range(20)]
    a = assign_splits(keys, {"valid": 0.1, "test": 0.2})
    b = assign_splits(list(reversed(keys)), {"valid": 0.1, "test": 0.2})
    assert a == b
    assert sorted(a.values()).count("valid") == 2 and list(a.values()).count("test") == 4
    # few keys: at least one per held-out split while leaving one for train
    small = assign_splits(["a", "b", "c"], {"valid": 0.1, "test": 0.1})
    assert sorted(small.values()) == ["test", "train", "valid"]
    assert assign_splits(["only"], {"valid": 0.5}) == {"only": "train"}


# ------------------------------------------------------------------------------------ TIMIT
PHN = "0 2000 h#\n2000 3000 q\n3000 6000 ix\n6000 7000 tcl\n7000 8000 t\n8000 12000 s\n12000 16000 h#\n"
WRD = "2000 8000 it\n7500 12000 is\n"  # real TIMIT words may share samples
TXT = "0 16000 It is.\n"


def write_timit_utt(stem, *, audio="sphere", rate=SR, phn=PHN, wrd=WRD, txt=TXT, case=str.upper, n=None):
    stem.parent.mkdir(parents=True, exist_ok=True)
    n = rate if n is None else n
    wave = tone(n, rate)
    ext = lambda e: stem.with_name(stem.name + case(e))  # noqa: E731
    if audio == "sphere":
        write_sphere(ext(".wav"), pcm16(wave), rate)
    elif audio == "riff":
        sf.write(str(ext(".wav")), wave, rate, subtype="PCM_16")
    if phn is not None:
        ext(".phn").write_text(phn)
    if wrd is not None:
        ext(".wrd").write_text(wrd)
    if txt is not None:
        ext(".txt").write_text(txt)
    return wave


def ldc_tree(root):
    for split, dr, spk in [("TRAIN", "DR1", "FCJF0"), ("TRAIN", "DR1", "MDAB0"), ("TRAIN", "DR2", "FAEM0"),
                           ("TEST", "DR1", "FAKS0")]:
        for utt in ("SA1", "SX2"):
            write_timit_utt(root / split / dr / spk / utt)


def test_timit_ldc_layout(tmp_path):
    ldc_tree(tmp_path / "timit")
    # some distributions add a converted copy next to the SPHERE original: still one utterance
    extra = tmp_path / "timit" / "TRAIN" / "DR1" / "FCJF0" / "SA1.WAV.wav"
    sf.write(str(extra), tone(SR), SR, subtype="PCM_16")
    res = import_timit(tmp_path / "timit", tmp_path / "out", progress=False)
    corpus = Corpus.load(tmp_path / "out")
    assert len(corpus) == 8 and not res.skipped
    ids = sorted(u.id for u in corpus)
    assert ids[:2] == ["faem0_sa1", "faem0_sx2"] and "fcjf0_sa1" in ids
    u = next(u for u in corpus if u.id == "fcjf0_sa1")
    assert u.speaker == "fcjf0" and u.text == "It is." and u.duration == pytest.approx(1.0)
    assert u.audio == "audio/fcjf0_sa1.wav"
    assert u.phones == [(0.0, 0.125, "sil"), (0.125, 0.375, "ih"), (0.375, 0.4375, "sil"),
                        (0.4375, 0.5, "t"), (0.5, 0.75, "s"), (0.75, 1.0, "sil")]
    assert [lab for _, _, lab in u.source_phones] == ["h#", "q", "ix", "tcl", "t", "s", "h#"]
    assert u.words == [(0.125, 0.5, "it"), (0.5, 0.75, "is")]  # overlap resolved
    # audio round trip: the written 16 kHz WAV holds the SPHERE samples
    got, sr = sf.read(str(corpus.audio_path(u)), dtype="int16")
    assert sr == SR and np.array_equal(got, pcm16(tone(SR)))
    # splits: TEST speaker -> test; exactly one of the three train speakers carved out as valid
    split = {u.speaker: u.split for u in corpus}
    assert split["faks0"] == "test"
    assert sorted(split[s] for s in ("fcjf0", "mdab0", "faem0")) == ["train", "train", "valid"]
    # deterministic
    import_timit(tmp_path / "timit", tmp_path / "out2", progress=False)
    assert {u.id: u.split for u in Corpus.load(tmp_path / "out2")} == {u.id: u.split for u in corpus}


def test_timit_flat_nltk_layout_and_resampling(tmp_path):
    root = tmp_path / "sample"
    # 8 kHz RIFF audio: the .phn is indexed at 8 kHz, the written audio is 16 kHz
    phn8 = "0 1000 h#\n1000 3000 ae\n3000 4000 pau\n4000 8000 n\n"
    for spk in ("dr1-fvmh0", "dr2-mbma0", "dr3-fdjh0", "dr4-mtrt0"):
        write_timit_utt(root / spk / "sa1", audio="riff", rate=8000, phn=phn8, wrd=None, txt="0 8000 An.\n",
                        case=str.lower)
    import_timit(root, tmp_path / "out", progress=False)
    corpus = Corpus.load(tmp_path / "out")
    u = next(u for u in corpus if u.id == "fvmh0_sa1")
    assert u.speaker == "fvmh0" and u.words is None
    assert u.phones == [(0.0, 0.125, "sil"), (0.125, 0.375, "ae"), (0.375, 0.5, "sil"), (0.5, 1.0, "n")]
    assert sf.info(str(corpus.audio_path(u))).samplerate == SR
    assert sf.info(str(corpus.audio_path(u))).frames == SR
    assert {u.split for u in corpus} == {"train", "valid", "test"}  # by speaker hash, 4 speakers


@pytest.mark.parametrize("case, expect", [
    ("truncated_sphere", r"FCJF0[/\\]SA1\.WAV: truncated SPHERE audio"),
    ("shorten", r"SA1\.WAV.*compressed"),
    ("stereo", r"SA1\.WAV: expected mono audio, got 2 channels"),
    ("garbage", r"SA1\.WAV: unreadable audio"),
    ("truncated_riff", r"SA1\.WAV: truncated audio"),
    ("empty_text", r"SA1\.TXT: empty transcript"),
    ("outside", r"SA1\.PHN.*outside the audio"),
    ("overlap", r"SA1\.PHN.*overlap or are unsorted"),
    ("unknown", r"SA1\.PHN: unknown phone label 'zz'"),
    ("bad_line", r"SA1\.PHN:2: sample indices must be integers"),
    ("no_txt", r"SA1\.PHN: no transcript"),
    ("no_phn", r"SA1\.WAV: no phone labels"),
    ("no_audio", r"SA1\.PHN: no audio"),
])
def test_timit_bad_input(tmp_path, case, expect):
    root = tmp_path / "timit"
    good = root / "TRAIN" / "DR1" / "MDAB0" / "SA1"
    write_timit_utt(good)
    bad = root / "TRAIN" / "DR1" / "FCJF0" / "SA1"
    kw = {}
    if case == "outside":
        kw["phn"] = PHN.replace("12000 16000 h#", "12000 17000 h#")
    elif case == "overlap":
        kw["phn"] = PHN.replace("3000 6000 ix", "2500 6000 ix")
    elif case == "unknown":
        kw["phn"] = PHN.replace(" s\n", " zz\n")
    elif case == "bad_line":
        kw["phn"] = PHN.replace("2000 3000 q", "2000 3k q")
    elif case == "empty_text":
        kw["txt"] = "0 16000 \n"
    elif case == "no_txt":
        kw["txt"] = None
    elif case == "no_phn":
        kw["phn"] = None
    elif case == "no_audio":
        kw["audio"] = None
    write_timit_utt(bad, **kw)
    wav = bad.with_name("SA1.WAV")
    if case == "truncated_sphere":
        write_sphere(wav, pcm16(tone(SR)), truncate_to=1024 + 1000)
    elif case == "shorten":
        write_sphere(wav, pcm16(tone(SR)), coding="pcm,embedded-shorten-v2.00")
    elif case == "stereo":
        sf.write(str(wav), np.stack([tone(SR), tone(SR)], 1), SR, format="WAV", subtype="PCM_16")
    elif case == "garbage":
        wav.write_bytes(b"this is not audio at all" * 20)
    elif case == "truncated_riff":
        sf.write(str(wav), tone(SR), SR, format="WAV", subtype="PCM_16")
        wav.write_bytes(wav.read_bytes()[:20000])
    with pytest.raises(ValueError, match=expect):
        import_timit(root, tmp_path / "out", progress=False)
    # --skip-bad: the good utterance is imported, the bad one listed with its reason
    res = import_timit(root, tmp_path / "out", skip_bad=True, progress=False)
    assert [u.id for u in res.utterances] == ["mdab0_sa1"]
    assert [s.id for s in res.skipped] == ["fcjf0_sa1"]
    lines = [json.loads(x) for x in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["id"] == "fcjf0_sa1"
    assert re.search(expect, lines[0]["reason"])
    assert [u.id for u in Corpus.load(tmp_path / "out")] == ["mdab0_sa1"]


def test_timit_cli_skip_bad_prints_list(tmp_path, capsys):
    root = tmp_path / "timit"
    write_timit_utt(root / "TRAIN" / "DR1" / "MDAB0" / "SA1")
    write_timit_utt(root / "TRAIN" / "DR1" / "FCJF0" / "SA1", txt="0 1 ...\n")
    assert main(["import", "timit", str(root), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "SA1.TXT: empty transcript" in capsys.readouterr().err
    assert main(["import", "timit", str(root), "--out", str(tmp_path / "o"), "--skip-bad", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 utterance(s)" in out and "fcjf0_sa1:" in out and "empty transcript" in out
    assert "wrote 1 utterance(s)" in out


def test_nothing_imported_is_an_error(tmp_path):
    root = tmp_path / "timit"
    write_timit_utt(root / "TRAIN" / "DR1" / "FCJF0" / "SA1", txt=None)
    with pytest.raises(ImporterError, match="nothing imported; 1 skipped"):
        import_timit(root, tmp_path / "out", skip_bad=True, progress=False)
    assert not (tmp_path / "out").exists()  # all or nothing: a failed import leaves no folder behind
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImporterError, match="no TIMIT files"):
        import_timit(tmp_path / "empty", tmp_path / "o2", progress=False)


# ------------------------------------------------------------------------------------ TextGrid
def write_textgrid(path, tiers, xmax):
    from praatio import textgrid as tgio
    from praatio.utilities.constants import Interval

    tg = tgio.Textgrid()
    for name, ivs in tiers.items():
        tg.addTier(tgio.IntervalTier(name, [Interval(*iv) for iv in ivs], 0, xmax))
    path.parent.mkdir(parents=True, exist_ok=True)
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True)


def test_textgrid_mfa_style(tmp_path):
    root = tmp_path / "mfa"
    for spk in ("alice", "bob"):
        (root / spk).mkdir(parents=True)
        sf.write(str(root / spk / "u1.wav"), tone(22050, 22050), 22050, subtype="PCM_16")
        write_textgrid(root / spk / "u1.TextGrid", {
            "words": [(0.1, 0.5, "hello"), (0.5, 0.55, "<eps>"), (0.55, 0.9, "there")],
            "phones": [(0.1, 0.2, "HH"), (0.2, 0.3, "AH0"), (0.3, 0.4, "L"), (0.4, 0.5, "OW1"), (0.5, 0.55, "sp"),
                       (0.55, 0.65, "DH"), (0.65, 0.8, "EH1"), (0.8, 0.9, "spn")]}, 1.0)
    import_textgrid(root, tmp_path / "out", progress=False)
    corpus = Corpus.load(tmp_path / "out")
    u = next(u for u in corpus if u.id == "alice_u1")
    assert u.speaker == "alice" and u.text == "hello there" and u.duration == pytest.approx(1.0)
    assert u.phones == [(0.0, 0.1, "sil"), (0.1, 0.2, "hh"), (0.2, 0.3, "ah"), (0.3, 0.4, "l"), (0.4, 0.5, "ow"),
                        (0.5, 0.55, "sil"), (0.55, 0.65, "dh"), (0.65, 0.8, "eh"), (0.8, 0.9, "sil"),
                        (0.9, 1.0, "sil")]
    assert u.source_phones[1] == (0.1, 0.2, "HH") and u.source_phones[0][2] == ""
    assert u.words == [(0.1, 0.5, "hello"), (0.55, 0.9, "there")]
    assert sf.info(str(corpus.audio_path(u))).samplerate == SR and sf.info(str(corpus.audio_path(u))).frames == SR


def test_textgrid_ipa_map_tier_and_sidecar(tmp_path):
    root = tmp_path / "tg"
    root.mkdir()
    sf.write(str(root / "x.wav"), tone(SR), SR, subtype="PCM_16")
    (root / "x.txt").write_text("She.\n")
    write_textgrid(root / "x.TextGrid", {"segs": [(0.0, 0.2, "ʃ"), (0.2, 0.6, "iː"), (0.6, 1.0, "")]}, 1.0)
    with pytest.raises(ImporterError, match=r"x\.TextGrid: no phone tier.*'segs'"):
        import_textgrid(root, tmp_path / "o", progress=False)
    with pytest.raises(UnknownPhoneError, match=r"x\.TextGrid: unknown phone label 'ʃ'"):
        import_textgrid(root, tmp_path / "o", tier="segs", progress=False)
    (tmp_path / "ipa.tsv").write_text("# IPA -> ARPAbet\nʃ\tsh\niː\tiy\n")
    assert main(["import", "textgrid", str(root), "--out", str(tmp_path / "o"), "--tier", "segs",
                 "--map", str(tmp_path / "ipa.tsv"), "--speaker", "sp1", "--no-progress"]) == 0
    u = Corpus.load(tmp_path / "o")[0]
    assert u.text == "She." and u.phones == [(0.0, 0.2, "sh"), (0.2, 0.6, "iy"), (0.6, 1.0, "sil")]
    assert u.speaker == "sp1" and u.id == "x" and u.split == "train"
    assert [lab for _, _, lab in u.source_phones] == ["ʃ", "iː", ""]
    # JSON map works too; a map onto a non-canonical label is rejected naming the entry
    (tmp_path / "m.json").write_text(json.dumps({"ʃ": "sh", "iː": "iy"}))
    assert read_label_map(tmp_path / "m.json") == {"ʃ": "sh", "iː": "iy"}
    (tmp_path / "bad.tsv").write_text("ʃ\tesh\n")
    with pytest.raises(ImporterError, match=r"bad\.tsv:1: target 'esh' is not a canonical phone"):
        read_label_map(tmp_path / "bad.tsv")


def test_textgrid_bad_input(tmp_path):
    root = tmp_path / "tg"
    root.mkdir()
    sf.write(str(root / "ok.wav"), tone(SR), SR, subtype="PCM_16")
    (root / "ok.txt").write_text("ah")
    write_textgrid(root / "ok.TextGrid", {"phones": [(0.0, 1.0, "AA1")]}, 1.0)
    sf.write(str(root / "long.wav"), tone(SR // 2), SR, subtype="PCM_16")  # 0.5 s audio, 1 s labels
    (root / "long.txt").write_text("ah")
    write_textgrid(root / "long.TextGrid", {"phones": [(0.0, 0.9, "AA1")]}, 1.0)
    sf.write(str(root / "orphan.wav"), tone(SR), SR, subtype="PCM_16")  # no TextGrid
    (root / "notext.wav").write_bytes((root / "ok.wav").read_bytes())
    write_textgrid(root / "notext.TextGrid", {"phones": [(0.0, 1.0, "AA1")]}, 1.0)
    with pytest.raises(CorpusError, match=r"long\.TextGrid \(utterance 'long'\).*outside the audio"):
        import_textgrid(root, tmp_path / "o", progress=False)
    (root / "broken.TextGrid").write_text("File type = \"ooTextFile\"\nnonsense")
    (root / "broken.wav").write_bytes((root / "ok.wav").read_bytes())
    with pytest.raises(ImporterError, match=r"broken\.TextGrid: unreadable TextGrid"):
        import_textgrid(root, tmp_path / "o", progress=False)
    res = import_textgrid(root, tmp_path / "o", skip_bad=True, progress=False)
    assert [u.id for u in res.utterances] == ["ok"]
    reasons = {s.id: s.reason for s in res.skipped}
    assert set(reasons) == {"long", "orphan", "notext", "broken"}
    assert "no TextGrid" in reasons["orphan"] and "no transcript" in reasons["notext"]
    assert "unreadable TextGrid" in reasons["broken"] and "outside the audio" in reasons["long"]


# ------------------------------------------------------------------------------------ Festival .lab
LAB = "separator ;\nnfields 1\n#\n    0.100 125 pau\n    0.250 125 hh\n    0.400 125 ax\n    0.600 125 l\n" \
      "    0.800 125 ow\n    1.000 125 pau\n"


def test_read_lab_and_import(tmp_path):
    root = tmp_path / "lab" / "kal"
    root.mkdir(parents=True)
    (root / "a.lab").write_text(LAB)
    (root / "a.txt").write_text("Hello.")
    sf.write(str(root / "a.wav"), tone(8000, 8000), 8000, subtype="PCM_16")
    assert read_lab(root / "a.lab") == [(0.0, 0.1, "pau"), (0.1, 0.25, "hh"), (0.25, 0.4, "ax"), (0.4, 0.6, "l"),
                                        (0.6, 0.8, "ow"), (0.8, 1.0, "pau")]
    assert main(["import", "lab", str(tmp_path / "lab"), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    u = Corpus.load(tmp_path / "o")[0]
    assert u.id == "kal_a" and u.speaker == "kal" and u.text == "Hello."
    assert [lab for _, _, lab in u.phones] == ["sil", "hh", "ah", "l", "ow", "sil"]
    assert u.phones[2] == (0.25, 0.4, "ah") and u.source_phones[2] == (0.25, 0.4, "ax")


def test_lab_bad_input(tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    (root / "u.lab").write_text("#\n0.5 125 hh\n0.3 125 ax\n")
    with pytest.raises(ImporterError, match=r"u\.lab:3: end time 0\.300 s is not after the previous end"):
        read_lab(root / "u.lab")
    (root / "v.lab").write_text("#\n0.5 hh\n")
    with pytest.raises(ImporterError, match=r"v\.lab:2: expected 'end_time color label'"):
        read_lab(root / "v.lab")
    (root / "w.lab").write_text("#\nabc 125 hh\n")
    with pytest.raises(ImporterError, match=r"w\.lab:2: end time 'abc' is not a number"):
        read_lab(root / "w.lab")
    (root / "u.lab").write_text(LAB)
    with pytest.raises(ImporterError, match=r"u\.lab: no audio"):
        import_lab(root, tmp_path / "o", progress=False)
    sf.write(str(root / "u.wav"), tone(SR), SR, subtype="PCM_16")
    with pytest.raises(ImporterError, match=r"u\.lab: no transcript"):
        import_lab(root, tmp_path / "o", progress=False)


def test_read_lab_htk_variant(tmp_path):
    (tmp_path / "h.lab").write_text("0 1000000 pau\n1000000 2500000 hh\n2500000 4000000 ax\n")
    assert read_lab(tmp_path / "h.lab") == [(0.0, 0.1, "pau"), (0.1, 0.25, "hh"), (0.25, 0.4, "ax")]
    # no header but float end times: ESPS without a header
    (tmp_path / "e.lab").write_text("0.1 125 pau\n0.25 125 hh\n")
    assert read_lab(tmp_path / "e.lab") == [(0.0, 0.1, "pau"), (0.1, 0.25, "hh")]
