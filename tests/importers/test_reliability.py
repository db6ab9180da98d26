"""Importers, all or nothing and strict (issue 15, ``docs/bad-inputs.md``): a failed import leaves the output
folder as it was, an existing corpus is never overwritten without --force, impossible headers and numbers are
errors naming the file (and line), never a MemoryError or a silently dropped segment."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from toposcope.cli import main
from toposcope.corpus import Corpus
from toposcope.importers import ImporterError, SphereError, import_lab, import_timit, read_lab, read_sphere
from toposcope.importers.common import assign_splits
from toposcope.importers.timit import read_sample_segments

SR = 16000
LAB = "#\n0.1 125 pau\n0.5 125 hh\n1.0 125 pau\n"


def lab_tree(root, names=("a", "b"), bad=()):
    """``.lab`` + ``.wav`` + ``.txt`` triples; names in ``bad`` get an empty transcript."""
    root.mkdir(parents=True, exist_ok=True)
    for n in names:
        (root / f"{n}.lab").write_text(LAB)
        (root / f"{n}.txt").write_text("" if n in bad else "Hello.")
        sf.write(str(root / f"{n}.wav"), (0.2 * np.sin(np.arange(SR) / 5)).astype(np.float32), SR,
                 subtype="PCM_16")
    return root


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.endswith((".partial", ".old", ".tmp")))


# ----------------------------------------------------------------------------- all or nothing
def test_failed_import_leaves_no_folder_and_existing_corpus_untouched(tmp_path):
    src = lab_tree(tmp_path / "src", names=("a", "b"), bad=("b",))
    out = tmp_path / "deep" / "er" / "out"
    with pytest.raises(ImporterError, match=r"b\.txt: empty transcript"):
        import_lab(src, out, progress=False)
    assert not out.exists() and not (tmp_path / "deep").exists()  # nothing half-written, no empty folders
    # an existing corpus: refused without --force, even when the import would fail anyway
    good = lab_tree(tmp_path / "good", names=("a",))
    import_lab(good, tmp_path / "corpus", progress=False)
    before = snapshot(tmp_path / "corpus")
    with pytest.raises(ImporterError, match=r"corpus: exists and is not empty; .*--force"):
        import_lab(src, tmp_path / "corpus", skip_bad=True, progress=False)
    # --force with a failing import: the old corpus stays exactly as it was
    with pytest.raises(ImporterError, match="empty transcript"):
        import_lab(src, tmp_path / "corpus", force=True, progress=False)
    assert snapshot(tmp_path / "corpus") == before
    assert leftovers(tmp_path) == []
    # --force with a good import replaces it (the new manifest, no audio of the old one left behind)
    lab_tree(tmp_path / "other", names=("x", "y"))
    res = import_lab(tmp_path / "other", tmp_path / "corpus", force=True, progress=False)
    assert [u.id for u in res.utterances] == ["x", "y"] and res.out == tmp_path / "corpus"
    assert sorted(os.listdir(tmp_path / "corpus" / "audio")) == ["x.wav", "y.wav"]
    assert [u.id for u in Corpus.load(tmp_path / "corpus")] == ["x", "y"]
    assert leftovers(tmp_path) == []


def test_cli_force_and_skip_bad(tmp_path, capsys):
    src = lab_tree(tmp_path / "src", names=("a", "b"), bad=("b",))
    (tmp_path / "out").mkdir()  # an empty folder is fine
    assert main(["import", "lab", str(src), "--out", str(tmp_path / "out"), "--skip-bad", "--no-progress"]) == 0
    assert json.loads((tmp_path / "out" / "skipped.jsonl").read_text())["id"] == "b"
    capsys.readouterr()
    assert main(["import", "lab", str(src), "--out", str(tmp_path / "out"), "--skip-bad", "--no-progress"]) == 2
    assert f"toposcope import: error: {tmp_path / 'out'}: exists and is not empty" in capsys.readouterr().err
    (src / "b.txt").write_text("Fixed.")
    assert main(["import", "lab", str(src), "--out", str(tmp_path / "out"), "--force", "--no-progress"]) == 0
    assert not (tmp_path / "out" / "skipped.jsonl").exists()
    assert len(Corpus.load(tmp_path / "out")) == 2


def test_atomic_dir_interrupt_and_stale_partials(tmp_path):
    from toposcope._util import atomic_dir

    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            (tmp / "f").write_text("x")
            raise KeyboardInterrupt
    assert not out.exists() and leftovers(tmp_path) == []
    stale = tmp_path / ".o.dead1234.partial"  # left by a killed writer: nobody holds its lock
    stale.mkdir()
    (stale / "junk").write_text("x")
    with atomic_dir(out) as tmp:
        (tmp / "f").write_text("y")
    assert (out / "f").read_text() == "y" and leftovers(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        with atomic_dir(tmp_path / "file"):
            pass
    # resumable: the partial folder survives a failure and is reused; a second writer is refused
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "r", resumable=True) as tmp:
            (tmp / "done").write_text("1")
            with pytest.raises(ValueError, match="another process is writing it"):
                with atomic_dir(tmp_path / "r", resumable=True):
                    pass
            raise RuntimeError
    assert leftovers(tmp_path) == [".r.partial"] and not (tmp_path / "r").exists()
    with atomic_dir(tmp_path / "r", resumable=True) as tmp:
        assert (tmp / "done").read_text() == "1"
    assert (tmp_path / "r" / "done").exists() and leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- SPHERE sizes and fields
def sphere(path, fields, data=b"\0" * 200):
    head = ("NIST_1A\n   1024\n" + "\n".join(fields + ["end_head"]) + "\n").encode()
    path.write_bytes(head + b" " * (1024 - len(head)) + data)
    return path


def test_sphere_impossible_sizes_are_errors_even_with_skip_bad(tmp_path):
    ok = ["sample_count -i 100", "sample_rate -i 16000", "sample_n_bytes -i 2"]
    f = sphere(tmp_path / "huge.wav", ["sample_count -i 1000000000000000", "sample_rate -i 16000"])
    with pytest.raises(SphereError, match=r"huge\.wav: the header promises 1000000000000000 frames"):
        read_sphere(f)
    f = sphere(tmp_path / "more.wav", ["sample_count -i 1000", "sample_rate -i 16000"])
    with pytest.raises(SphereError, match=r"more\.wav: truncated SPHERE audio: header promises 1000 samples"):
        read_sphere(f)
    for name, fields, msg in [
        ("rate", ["sample_count -i 100", "sample_rate -i 2147483647"], "sample rate 2147483647 Hz cannot be true"),
        ("chan", ok + ["channel_count -i 99999"], "channel count 99999 cannot be true"),
        ("strcount", ["sample_count -s3 abc", "sample_rate -i 16000"], "field sample_count must be an integer, got 'abc'"),
        ("infrate", ["sample_count -i 100", "sample_rate -r inf"], "field sample_rate must be an integer, got inf"),
        ("nbytes", ok[:2] + ["sample_n_bytes -i 3"], "unsupported sample_n_bytes 3"),
    ]:
        with pytest.raises(SphereError, match=rf"{name}\.wav: .*{msg}"):
            read_sphere(sphere(tmp_path / f"{name}.wav", fields))
    head = tmp_path / "head.wav"
    head.write_bytes(b"NIST_1A\n99999999\n")
    with pytest.raises(SphereError, match=r"head\.wav: SPHERE header size 99999999 cannot be true"):
        read_sphere(head)
    # the TIMIT importer with --skip-bad: skipped and reported, the good utterance imported
    root = tmp_path / "timit" / "dr1-fabc0"
    root.mkdir(parents=True)
    for utt, fields in (("sa1", ok), ("sa2", ["sample_count -i 1000000000000000", "sample_rate -i 16000"])):
        sphere(root / f"{utt}.wav", fields)
        (root / f"{utt}.phn").write_text("0 100 h#\n")
        (root / f"{utt}.txt").write_text("0 100 Hi.\n")
    res = import_timit(tmp_path / "timit", tmp_path / "o", skip_bad=True, progress=False)
    assert [u.id for u in res.utterances] == ["fabc0_sa1"]
    assert "the header promises 1000000000000000 frames" in res.skipped[0].reason


# ----------------------------------------------------------------------------- numbers and lines
def test_lab_negative_nan_and_inf_times_name_the_line(tmp_path):
    f = tmp_path / "x.lab"
    for body, msg in [("#\n-0.1 125 pau\n0.5 125 hh\n", r"x\.lab:2: end time -0\.100 s is negative"),
                      ("#\n0.1 125 pau\nnan 125 hh\n", r"x\.lab:3: end time must be a finite number, got nan"),
                      ("#\n0.1 125 pau\ninf 125 hh\n", r"x\.lab:3: end time must be a finite number, got inf"),
                      ("#\n1e999 125 hh\n", r"x\.lab:2: end time must be a finite number, got inf")]:
        f.write_text(body)
        with pytest.raises(ImporterError, match=msg):
            read_lab(f)
    f.write_text("#\n0 125 pau\n0.5 125 hh\n")  # a first segment ending exactly at 0 is still skipped
    assert read_lab(f) == [(0.0, 0.5, "hh")]
    f.write_text("0 1000000 pau\n² 2000000 hh\n")  # "²".isdigit() but int("²") fails: not HTK, no crash
    with pytest.raises(ImporterError, match=r"x\.lab:2: end time '²' is not a number"):
        read_lab(f)


def test_phn_negative_reversed_and_huge_samples(tmp_path):
    f = tmp_path / "a.phn"
    for body, msg in [("-5 100 h#\n", r"a\.phn:1: sample indices must be integers >= 0"),
                      ("100 50 h#\n", r"a\.phn:1: end sample 50 is not after start sample 100"),
                      ("0 " + "9" * 400 + " h#\n", r"a\.phn:1: sample indices must be integers >= 0"),
                      ("0 ٣ h#\n", r"a\.phn:1: sample indices must be integers")]:
        f.write_text(body)
        with pytest.raises(ImporterError, match=msg):
            read_sample_segments(f, SR)


@pytest.mark.parametrize("fractions, msg", [
    ({"valid": float("nan")}, r"the valid fraction must be a number in \[0, 1\), got nan"),
    ({"valid": -0.1}, r"the valid fraction must be a number in \[0, 1\), got -0.1"),
    ({"test": float("inf")}, "the test fraction must be"),
    ({"valid": 0.6, "test": 0.5}, "must add up to less than 1"),
])
def test_split_fractions_are_checked(fractions, msg):
    with pytest.raises(ImporterError, match=msg):
        assign_splits(["a", "b", "c"], fractions)


def test_cli_fraction_arguments(tmp_path, capsys):
    for value in ("nan", "-0.1", "1", "inf", "x"):
        with pytest.raises(SystemExit) as e:
            main(["import", "lab", str(tmp_path), "--out", str(tmp_path / "o"), "--valid-fraction", value])
        assert e.value.code == 2
        assert "--valid-fraction" in capsys.readouterr().err
    with pytest.raises(ImporterError, match="the test fraction must be"):
        import_timit(tmp_path, tmp_path / "o", test_fraction=float("nan"), progress=False)
    for argv in (["synth", "--out", "x", "--utterances", "-3"], ["synth", "--out", "x", "--hours", "nan"],
                 ["synth", "--out", "x", "--jobs", "0"], ["align", "--audio", "a", "--transcripts", "t",
                                                          "--out", "o", "--test-fraction", "-1"]):
        with pytest.raises(SystemExit):
            main(argv)
    assert not (tmp_path / "o").exists()


def test_import_never_writes_a_manifest_that_does_not_load(tmp_path):
    """Found by the long fuzz run: a 1e-7 s segment passed the import's checks but was written rounded to 1 µs,
    so the corpus it wrote failed Corpus.load ("end 0.000 <= start 0.000"). Now the import stops instead."""
    from toposcope.corpus import CorpusError

    src = lab_tree(tmp_path / "src", names=("a",))
    (src / "a.lab").write_text("#\n1e-7 125 aa\n")
    with pytest.raises(CorpusError, match=r"a\.lab.*phones\[0\] 'aa' \[0\.0, 1e-07\] s is shorter than the "
                                          r"manifest's time resolution \(1e-6 s\)"):
        import_lab(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
