"""Property-based fuzzing of every parser (issue 15, ``docs/bad-inputs.md``): any bytes give a valid result or
ONE error of the project's own type that names the file, never another exception, never a half-written output.

Each property is a plain function (no pytest fixtures) so that ``scripts/fuzz_long.py`` can run the same
properties with ≥ 10,000 cases each. The normal test run uses a short budget: ``TOPOSCOPE_FUZZ_EXAMPLES``
cases per property (default 40; the whole file stays well under 20 s).

Adding a parser (e.g. the Lhotse manifests): write ``fuzz_<name>`` below with a strategy of raw bytes plus
near-valid inputs, a ``_check_<name>`` for what a valid result is, and add it to ``PARSERS``.
"""

from __future__ import annotations

import atexit
import itertools
import json
import math
import os
import shutil
import struct
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from toposcope.audio import AudioError, read_raw  # noqa: E402
from toposcope.corpus import CorpusError, Utterance, read_manifest  # noqa: E402
from toposcope.importers.common import ImporterError, check_corpus, load_audio, read_label_map  # noqa: E402
from toposcope.importers.lab import import_lab, read_lab  # noqa: E402
from toposcope.importers.sphere import SphereError, read_sphere  # noqa: E402
from toposcope.importers.textgrid import read_textgrid_tiers  # noqa: E402
from toposcope.importers.timit import read_sample_segments  # noqa: E402
from toposcope.phones import PHONES, UnknownPhoneError  # noqa: E402
from toposcope.validation import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE  # noqa: E402

EXAMPLES = int(os.environ.get("TOPOSCOPE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=EXAMPLES < 1000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
#: Cases run per property (``scripts/fuzz_long.py`` reports them).
CASES: Counter = Counter()
_TMP = Path(tempfile.mkdtemp(prefix="toposcope-fuzz-"))
atexit.register(shutil.rmtree, _TMP, True)
_n = itertools.count()


def _file(name: str, data: bytes) -> Path:
    path = _TMP / name
    path.write_bytes(data)
    return path


def _expect(path: Path, call, errors):
    """``call()``'s result, or ``None`` after an error of ``errors`` naming ``path``; anything else fails."""
    try:
        return call()
    except errors as e:
        assert str(path) in str(e), f"error does not name the file: {e}"
        return None


# ------------------------------------------------------------------------------------ strategies
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 30, 10 ** 30),
                    st.sampled_from([0, 0.5, 1.0, -0.0, 1e-9, 1e308, 2 ** 63]))
anything = st.recursive(st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=6)),
                        lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=4), kids,
                                                                                             max_size=3)),
                        max_leaves=12)
labels = st.one_of(st.sampled_from(PHONES), st.text(max_size=4), st.sampled_from(["pau", "h#", "q", "ax", "AH0", ""]))
times = st.one_of(st.floats(-1, 3), numbers)
segments = st.lists(st.one_of(st.tuples(times, times, labels).map(list), anything), max_size=4)
manifest_objects = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=4), anything), "audio": st.one_of(
        st.sampled_from(["audio/a.wav", "../x.wav", "/etc/passwd", "", "a/../../b.wav", "C:\\x", "audio/\x00"]),
        st.text(max_size=8), anything),
     "speaker": st.one_of(st.text(max_size=3), anything), "text": st.one_of(st.text(max_size=6), anything),
     "duration": st.one_of(st.floats(0, 3), numbers, anything), "phones": st.one_of(segments, anything)},
    optional={"words": segments, "split": st.one_of(st.sampled_from(["train", "valid", "test", "dev"]), anything),
              "source_phones": segments, "extra": anything})
manifest_lines = st.one_of(manifest_objects.map(lambda d: json.dumps(d, allow_nan=True).encode()),
                           st.binary(max_size=60), st.text(max_size=40).map(str.encode),
                           st.integers(1, 3000).map(lambda k: b"[" * k + b"]" * (k % 7)))


def _mutate(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        if b:
            b[pos % len(b)] = val
    return bytes(b)


edits = st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=6)


# ------------------------------------------------------------------------------------ manifest
def _check_manifest(utts, path):
    for u in utts:
        assert isinstance(u, Utterance) and math.isfinite(u.duration) and u.duration > 0
        assert all(math.isfinite(s) and math.isfinite(e) and 0 <= s < e for s, e, _ in u.phones)
        assert not u.audio.startswith("/") and ".." not in Path(u.audio).parts
        u.validate("again")


@FUZZ
@given(st.lists(manifest_lines, max_size=4), st.booleans())
def fuzz_manifest(lines, sparse_audio):
    CASES["manifest"] += 1
    root = _TMP / "corpus"
    root.mkdir(exist_ok=True)
    path = _file("corpus/manifest.jsonl", b"\n".join(lines))
    utts = _expect(path, lambda: read_manifest(path), CorpusError)
    if utts is not None:
        _check_manifest(utts, path)
    res = check_corpus(root, read_samples=False, progress=False)  # collects, never raises
    assert all(isinstance(p, str) and p for p in res.problems)


# ------------------------------------------------------------------------------------ .lab
lab_lines = st.one_of(
    st.tuples(numbers, st.sampled_from(["125", "26", "x"]), labels).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    st.tuples(st.integers(-10, 10 ** 20), st.integers(-10, 10 ** 20), labels).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    st.text(max_size=20))


@FUZZ
@given(st.one_of(st.binary(max_size=200),
                 st.tuples(st.booleans(), st.lists(lab_lines, max_size=6)).map(
                     lambda t: (("separator ;\nnfields 1\n#\n" if t[0] else "") + "\n".join(t[1])).encode())))
def fuzz_lab(data):
    CASES["lab"] += 1
    path = _file("x.lab", data)
    segs = _expect(path, lambda: read_lab(path), ImporterError)
    if segs is not None:
        assert segs and all(math.isfinite(s) and math.isfinite(e) and 0 <= s < e and isinstance(lab, str)
                            for s, e, lab in segs)


# ------------------------------------------------------------------------------------ .phn / .wrd
phn_lines = st.one_of(st.tuples(st.integers(-5, 10 ** 20), st.integers(-5, 10 ** 20), labels).map(
    lambda t: f"{t[0]} {t[1]} {t[2]}"), st.text(max_size=20))


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.lists(phn_lines, max_size=6).map(lambda ls: "\n".join(ls).encode())),
       st.sampled_from([8000, 16000, 44100]))
def fuzz_phn(data, rate):
    CASES["phn/wrd"] += 1
    path = _file("x.phn", data)
    segs = _expect(path, lambda: read_sample_segments(path, rate), ImporterError)
    if segs is not None:
        assert segs and all(math.isfinite(s) and math.isfinite(e) and 0 <= s < e for s, e, _ in segs)


# ------------------------------------------------------------------------------------ TextGrid
def _textgrid(xmin, xmax, tiers) -> str:
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", f"xmin = {xmin}", f"xmax = {xmax}",
           "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for i, (name, kind, ivs) in enumerate(tiers, 1):
        out += [f"    item [{i}]:", f'        class = "{kind}"', f'        name = "{name}"',
                f"        xmin = {xmin}", f"        xmax = {xmax}", f"        intervals: size = {len(ivs)}"]
        for j, (a, b, lab) in enumerate(ivs, 1):
            out += [f"        intervals [{j}]:", f"            xmin = {a}", f"            xmax = {b}",
                    f'            text = "{lab}"']
    return "\n".join(out) + "\n"


tiers = st.lists(st.tuples(st.sampled_from(["phones", "words", "x"]), st.sampled_from(["IntervalTier", "TextTier"]),
                           st.lists(st.tuples(times, times, labels), max_size=4)), max_size=3)


@FUZZ
@given(st.one_of(st.binary(max_size=300),
                 st.tuples(times, times, tiers).map(lambda t: _textgrid(*t).encode()),
                 st.tuples(times, times, tiers, edits).map(lambda t: _mutate(_textgrid(*t[:3]).encode(), t[3]))))
def fuzz_textgrid(data):
    CASES["TextGrid"] += 1
    path = _file("x.TextGrid", data)
    res = _expect(path, lambda: read_textgrid_tiers(path, None), ImporterError)
    if res is not None:
        phones, words, xmax = res
        assert math.isfinite(xmax)
        for s, e, _ in phones + (words or []):
            assert math.isfinite(s) and math.isfinite(e) and 0 <= s < e


# ------------------------------------------------------------------------------------ SPHERE
sphere_fields = st.lists(st.one_of(
    st.tuples(st.sampled_from(["sample_count", "sample_rate", "channel_count", "sample_n_bytes"]),
              st.sampled_from(["-i", "-r", "-s3", "-x"]), st.one_of(numbers, st.text(max_size=5))).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}"),
    st.sampled_from(["sample_byte_format -s2 01", "sample_byte_format -s2 10", "sample_byte_format -s2 xx",
                     "sample_coding -s3 pcm", "sample_coding -s4 ulaw", "sample_coding -s26 pcm,embedded-shorten-v2.00",
                     "sample_count -i 100", "sample_rate -i 16000", "; comment", "garbage"])), max_size=8)


def _sphere(size, fields, data) -> bytes:
    head = f"NIST_1A\n{size}\n" + "\n".join(fields + ["end_head"]) + "\n"
    return head.encode("utf-8", "replace").ljust(1024, b" ") + data


@FUZZ
@given(st.one_of(st.binary(max_size=200).map(lambda b: b"NIST_1A\n" + b),
                 st.tuples(st.sampled_from(["   1024", "1024", "16", "-5", "x", "99999999", "1e3"]), sphere_fields,
                           st.binary(max_size=400)).map(lambda t: _sphere(*t))))
def fuzz_sphere(data):
    CASES["SPHERE"] += 1
    path = _file("x.sph", data)
    res = _expect(path, lambda: read_sphere(path), SphereError)
    if res is not None:
        wave, rate = res
        assert MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE and wave.ndim == 2 and wave.shape[0] > 0
        assert wave.dtype == np.float32 and np.all(np.abs(wave) <= 1.0)


# ------------------------------------------------------------------------------------ WAV header
def _wav(rate, channels, bits, n) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, np.zeros((n, channels), np.float32), rate, format="WAV",
             subtype={8: "PCM_U8", 16: "PCM_16", 32: "FLOAT"}[bits])
    return buf.getvalue()


_GOOD_WAV = _wav(16000, 1, 16, 64)
wav_fields = st.tuples(st.sampled_from([4, 22, 24, 28, 32, 34, 40]),
                       st.sampled_from(["<I", "<H", "<i"]), st.integers(0, 2 ** 32 - 1))


def _set_field(data: bytes, fields) -> bytes:
    b = bytearray(data)
    for off, fmt, val in fields:
        size = struct.calcsize(fmt)
        val = val % (2 ** (8 * size)) if fmt != "<i" else (val % 2 ** 32) - 2 ** 31
        b[off:off + size] = struct.pack(fmt, val)
    return bytes(b)


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: b"RIFF\x00\x00\x00\x00WAVE" + b),
                 st.lists(wav_fields, max_size=3).map(lambda fs: _set_field(_GOOD_WAV, fs)),
                 edits.map(lambda e: _mutate(_GOOD_WAV, [(p % 44, v) for p, v in e]))))
def fuzz_wav(data):
    CASES["WAV"] += 1
    path = _file("x.wav", data)
    res = _expect(path, lambda: read_raw(path), AudioError)
    if res is not None:
        wave, rate = res
        assert MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE and wave.shape[0] > 0
    res = _expect(path, lambda: load_audio(path), AudioError)  # what every importer reads with (resamples)
    if res is not None:
        assert res[0].ndim == 1 and np.all(np.isfinite(res[0]))


# ------------------------------------------------------------------------------------ label maps
@FUZZ
@given(st.one_of(st.binary(max_size=100), st.dictionaries(st.text(max_size=3), anything, max_size=3).map(
    lambda d: json.dumps(d).encode()), st.integers(1, 3000).map(lambda k: b"{" + b'"a":[' * k)),
       st.sampled_from([".json", ".tsv"]))
def fuzz_label_map(data, suffix):
    CASES["label map"] += 1
    path = _file("map" + suffix, data)
    m = _expect(path, lambda: read_label_map(path), ImporterError)
    if m is not None:
        assert all(v is None or v in PHONES for v in m.values())


# ------------------------------------------------------------------------------------ a whole import
_WAV16K = _wav(16000, 1, 16, 16000)


@FUZZ
@given(st.one_of(st.binary(max_size=80), st.lists(lab_lines, max_size=4).map(
    lambda ls: ("#\n" + "\n".join(ls)).encode())), st.booleans())
def fuzz_import(lab, skip_bad):
    """``import lab`` with a fuzzed .lab: a corpus that loads, or a project error and no output at all."""
    CASES["import (all or nothing)"] += 1
    k = next(_n)
    src = _TMP / f"src{k}"
    src.mkdir()
    (src / "a.lab").write_bytes(lab)
    (src / "a.wav").write_bytes(_WAV16K)
    (src / "a.txt").write_text("Hello.")
    out = _TMP / f"out{k}"
    try:
        try:
            res = import_lab(src, out, skip_bad=skip_bad, progress=False)
        except (ImporterError, CorpusError, AudioError, UnknownPhoneError) as e:
            assert str(src) in str(e) or str(out) in str(e), e
            assert not out.exists() and not any(p.name.startswith(f".out{k}.") for p in _TMP.iterdir())
            return
        from toposcope.corpus import Corpus

        assert [u.id for u in Corpus.load(out)] == [u.id for u in res.utterances] == ["a"]
    finally:
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


#: name -> property; ``scripts/fuzz_long.py`` runs each with ≥ 10,000 cases.
PARSERS = {"manifest": fuzz_manifest, "lab": fuzz_lab, "phn/wrd": fuzz_phn, "TextGrid": fuzz_textgrid,
           "SPHERE": fuzz_sphere, "WAV": fuzz_wav, "label map": fuzz_label_map,
           "import (all or nothing)": fuzz_import}


@pytest.mark.parametrize("name", list(PARSERS))
def test_fuzz(name):
    PARSERS[name]()
