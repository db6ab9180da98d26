"""Forced alignment with pocketsphinx (docs/method.md § Data and phones) on real synthesized speech (flite / espeak-ng)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from toposcope.align import Aligner, OutOfVocabularyError, align_corpus, read_transcripts
from toposcope.audio import resample
from toposcope.cli import main
from toposcope.corpus import Corpus
from toposcope.importers import ImporterError
from toposcope.text import normalize_text

SR = 16000
PAD = 0.5  # seconds of near-silence added before and after the speech


def synth(path, text, engine):
    """Speech for ``text`` with ``PAD`` s of silence around it, written at 16 kHz (espeak-ng: at
    22050 Hz, to exercise resampling)."""
    raw = path.with_suffix(".raw.wav")
    if engine == "flite":
        subprocess.run(["flite", "-t", text, "-o", str(raw)], check=True, capture_output=True)
    else:
        subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    wave, sr = sf.read(str(raw), dtype="float32")
    raw.unlink()
    rng = np.random.default_rng(0)
    pad = (rng.standard_normal(int(PAD * sr)) * 1e-4).astype(np.float32)
    wave = np.concatenate([pad, wave, pad])
    if engine == "flite":
        wave, sr = resample(wave, sr, SR), SR
    sf.write(str(path), wave, sr, subtype="PCM_16")


def variants(aligner, word):
    out = []
    for key in [word] + [f"{word}({k})" for k in range(2, 6)]:
        p = aligner.decoder.lookup_word(key)
        if p is not None:
            out.append([x.lower() for x in p.split()])
    return out


needs_tts = pytest.mark.skipif(not (shutil.which("flite") and shutil.which("espeak-ng")),
                               reason="flite and espeak-ng (Debian packages) are needed")

SENTENCES = {"u1": ("The quick brown fox jumps over the lazy dog.", "flite"),
             "u2": ("She sells sea shells by the sea shore.", "espeak")}


@needs_tts
def test_align_real_speech(tmp_path, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    for uid, (text, engine) in SENTENCES.items():
        synth(audio / f"{uid}.wav", text, engine)
    synth(audio / "u3.wav", "The glorptastic fox.", "flite")
    tsv = tmp_path / "transcripts.tsv"
    tsv.write_text("".join(f"{uid}\t{t}\n" for uid, (t, _) in SENTENCES.items()) + "u3\tThe glorptastic fox.\n")

    rc = main(["align", "--audio", str(audio), "--transcripts", str(tsv), "--out", str(tmp_path / "out"),
               "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "skipped 1 utterance(s)" in out and "'glorptastic'" in out and "out-of-vocabulary" in out
    skipped = [json.loads(x) for x in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert [s["id"] for s in skipped] == ["u3"] and "glorptastic" in skipped[0]["reason"]

    corpus = Corpus.load(tmp_path / "out")
    assert sorted(u.id for u in corpus) == ["u1", "u2"]
    aligner = Aligner()
    for u in corpus:
        wave, sr = sf.read(str(corpus.audio_path(u)), dtype="float32")
        assert sr == SR and u.duration == pytest.approx(len(wave) / SR)
        # timings inside the audio, contiguous
        assert u.phones[0][0] >= 0 and u.phones[-1][1] <= u.duration + 1e-9
        # words: the transcript's words in order, each spelled by one dictionary pronunciation
        words = normalize_text(u.text).split()
        assert [w for _, _, w in u.words] == words
        for ws, we, w in u.words:
            inside = [lab for s, e, lab in u.phones if s >= ws - 1e-9 and e <= we + 1e-9 and lab != "sil"]
            assert inside in variants(aligner, w), (w, inside)
        # speech where the energy is: the padding is silence, the speech phones are loud
        speech = [(s, e) for s, e, lab in u.phones if lab != "sil"]
        assert speech[0][0] >= PAD - 0.15 and speech[-1][1] <= u.duration - PAD + 0.15
        energy = lambda s, e: float(np.mean(wave[int(s * SR):int(e * SR)] ** 2))  # noqa: E731
        speech_energy = np.mean([energy(s, e) for s, e in speech])
        assert speech_energy > 100 * energy(0, PAD - 0.1)
        assert speech_energy > 100 * energy(u.duration - PAD + 0.1, u.duration)


def test_oov_and_empty_transcripts_are_reported(tmp_path):
    aligner = Aligner()
    wave = np.zeros(SR, dtype=np.float32)
    with pytest.raises(OutOfVocabularyError, match=r"x\.wav: out-of-vocabulary word\(s\) 'zzyzxq'"):
        aligner.align(wave, "hello zzyzxq", "x.wav")
    with pytest.raises(ImporterError, match="empty transcript"):
        aligner.align(wave, " ... ", "x.wav")
    assert aligner.pronunciation("fox") == ["f", "aa", "k", "s"]
    assert aligner.pronunciation("zzyzxq") is None


def test_transcript_file_errors(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("a\thello\nb hello\n")
    with pytest.raises(ImporterError, match=r"t\.tsv:2: expected 'id<TAB>text'"):
        read_transcripts(p)
    p.write_text("a\thello\na\tworld\n")
    with pytest.raises(ImporterError, match=r"t\.tsv:2: duplicate id 'a'"):
        read_transcripts(p)
    j = tmp_path / "t.jsonl"
    j.write_text(json.dumps({"id": "a", "text": "hi", "speaker": "s1"}) + "\n")
    assert read_transcripts(j)[0]["speaker"] == "s1"
    # missing audio: an error naming the transcript line, or skipped with --skip-bad
    (tmp_path / "audio").mkdir()
    with pytest.raises(ImporterError, match=r"t\.jsonl:1: no audio for 'a'"):
        align_corpus(tmp_path / "audio", j, tmp_path / "out", progress=False)
