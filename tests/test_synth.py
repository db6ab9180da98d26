"""Tests for the embedded default corpus (docs/method.md § Data and phones-2.3, issue 2): ``toposcope.synth``."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from toposcope.audio import read_audio
from toposcope.corpus import MANIFEST, Corpus
from toposcope.phones import PHONE_SET, VOWELS
from toposcope.synth import (DEFAULT_TEST_VOICES, VOICES, MissingPackageError, PlannedUtterance, SynthError,
                             plan_corpus, synthesize)
from toposcope.synth.espeak import ESPEAK_TO_ARPABET, map_espeak
from toposcope.synth.sentences import keep_sentence, load_sentences, split_fortune_text

FLITE2 = ["flite_awb", "flite_rms"]  # the cheapest voices for direct calls (one held out for test)


def _voice(u):
    return u.extra["voice"]


# ----------------------------------------------------------------------------- the tiny corpus

def test_tiny_corpus_has_many_voices_all_splits(tiny_corpus):
    assert len(tiny_corpus) == 30
    voices = {_voice(u) for u in tiny_corpus}
    assert len(voices) >= 3
    assert len({VOICES[v].engine for v in voices}) >= 2
    assert {u.split for u in tiny_corpus} == {"train", "valid", "test"}
    for u in tiny_corpus:  # speaker = (voice, rate, pitch)
        assert u.speaker == f"{_voice(u)}-r{u.extra['rate']:g}-p{u.extra['pitch']:g}"


def test_audio_is_16k_mono_and_phones_cover_it(tiny_corpus):
    for u in tiny_corpus:
        info = sf.info(str(tiny_corpus.audio_path(u)))
        assert (info.samplerate, info.channels) == (16000, 1)
        assert u.duration == pytest.approx(info.frames / 16000, abs=1e-5)
        ph = u.phones
        assert ph[0][0] == 0.0
        assert abs(ph[-1][1] - u.duration) <= 0.05
        for (s0, e0, _), (s1, e1, _) in zip(ph, ph[1:]):
            assert s1 == pytest.approx(e0, abs=1e-6), f"{u.id}: gap/overlap at {e0}"
            assert e1 > s1
        assert sum(1 for _, _, lab in ph if lab != "sil") >= 4 * 2  # >= 4 words


def test_labels_canonical_with_source_kept(tiny_corpus):
    for u in tiny_corpus:
        assert all(lab in PHONE_SET for _, _, lab in u.phones)
        assert u.source_phones and u.source_phones[0][0] == 0.0
        src = {(round(s, 4), round(e, 4)): lab for s, e, lab in u.source_phones}
        for s, e, lab in u.phones:
            orig = src.get((round(s, 4), round(e, 4)))
            if orig == "ax":
                assert lab == "ah"
            if orig == "pau":
                assert lab == "sil"
        assert u.text and u.text == u.text.lower() and "," not in u.text
        assert 4 <= len(u.text.split()) <= 20


def test_vowels_louder_than_silence_per_voice(tiny_corpus):
    energy: dict[str, dict[str, list[float]]] = {}
    for u in tiny_corpus:
        x = read_audio(tiny_corpus.audio_path(u))
        e = energy.setdefault(_voice(u), {"v": [], "s": []})
        for s, t, lab in u.phones:
            seg = x[int(s * 16000):int(t * 16000)]
            if len(seg) < 80:
                continue
            if lab in VOWELS:
                e["v"].append(float(np.sqrt(np.mean(seg ** 2))))
            elif lab == "sil":
                e["s"].append(float(np.sqrt(np.mean(seg ** 2))))
    for v, e in energy.items():
        assert e["v"] and e["s"], v
        assert np.mean(e["v"]) > 5 * np.mean(e["s"]), v


def test_fricatives_are_where_the_labels_say(tiny_corpus):
    """Label/audio alignment: energy above 4 kHz is a larger share in s/sh/z/f than in vowels."""
    hf = {"fric": [], "vowel": []}
    for u in tiny_corpus:
        for k, fracs in _hf_fractions(read_audio(tiny_corpus.audio_path(u)), u.phones).items():
            hf[k] += fracs
    assert len(hf["fric"]) > 20 and len(hf["vowel"]) > 50
    assert np.median(hf["fric"]) > 10 * np.median(hf["vowel"])


def test_splits_hold_out_voices_and_sentences(tiny_corpus):
    train = tiny_corpus.split("train")
    test = tiny_corpus.split("test")
    valid = tiny_corpus.split("valid")
    assert train and test and valid
    assert not {u.speaker for u in test} & {u.speaker for u in train}
    assert not {_voice(u) for u in test} & {_voice(u) for u in train}
    assert {_voice(u) for u in test} <= set(DEFAULT_TEST_VOICES)
    train_text = {u.text for u in train}
    assert not {u.text for u in valid} & train_text
    assert not {u.text for u in test} & train_text


def test_words_inside_audio_for_festival(tiny_corpus):
    fest = [u for u in tiny_corpus if _voice(u).startswith("festival")]
    assert fest
    for u in fest:
        assert u.words, u.id
        words = [w for _, _, w in u.words]
        text_words = u.text.split()
        assert len(words) >= 0.7 * len(text_words)
        bare = u.text.replace("'", "")  # Festival drops a bare "'s" token and some apostrophes
        assert all(w.replace("'", "") in bare for w in words), (words, u.text)
        assert all(0 <= s < e <= u.duration + 1e-6 for s, e, _ in u.words)
        # each word spans phones: its start is a phone boundary
        starts = {round(s, 4) for s, _, _ in u.phones}
        assert all(round(s, 4) in starts for s, _, _ in u.words)


def test_same_seed_same_utterances(tiny_corpus, tmp_path):
    """Deterministic and prefix-stable: a 3-utterance corpus with seed 0 equals the first 3 of the fixture."""
    small = synthesize(tmp_path / "c", utterances=3, seed=0, progress=False)
    for a, b in zip(small, tiny_corpus[:3]):
        assert a.to_dict() == b.to_dict()
        assert np.array_equal(read_audio(small.audio_path(a)), read_audio(tiny_corpus.audio_path(b)))
    other = plan_corpus(utterances=30, seed=1)
    assert [p.sentence for p in other] != [u.extra["source_text"] for u in tiny_corpus]


def test_resume_skips_finished_utterances(tmp_path):
    out = tmp_path / "c"
    c1 = synthesize(out, utterances=4, seed=5, voices=FLITE2, progress=False, jobs=1)
    wavs = sorted((out / "audio").glob("*.wav"))
    assert len(wavs) == len(c1) == 4
    mtimes = {p: p.stat().st_mtime_ns for p in wavs}
    first = (out / MANIFEST).read_text()
    wavs[0].unlink()  # one lost utterance: only it is redone
    c2 = synthesize(out, utterances=4, seed=5, voices=FLITE2, progress=False, jobs=1)
    assert (out / MANIFEST).read_text() == first
    assert [p.stat().st_mtime_ns for p in wavs[1:]] == [mtimes[p] for p in wavs[1:]]
    assert wavs[0].exists() and len(c2) == 4
    # a different plan in the same directory does not reuse mismatching utterances
    c3 = synthesize(out, utterances=4, seed=6, voices=FLITE2, progress=False, jobs=1)
    assert [u.text for u in c3] != [u.text for u in c2]


def test_cli_prints_summary(tmp_path, capsys):
    from toposcope.cli import main

    rc = main(["synth", "--out", str(tmp_path / "c"), "--utterances", "3", "--seed", "2",
               "--voices", ",".join(FLITE2), "--jobs", "1", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "3 utterances" in out and "2 voices" in out
    for split in ("train", "valid", "test"):
        assert split in out
    assert len(Corpus.load(tmp_path / "c")) == 3
    assert main(["synth", "--list-voices"]) == 0
    listed = capsys.readouterr().out
    assert all(v in listed for v in VOICES) and listed.count("held out for test") == len(DEFAULT_TEST_VOICES)
    from toposcope.synth.voices import ESPEAK_EXCLUDED

    from toposcope.synth.voices import EXTRA_VOICES

    opt_in = listed.split("opt-in voices")[1].split("not used:")[0]
    assert all(v in opt_in for v in EXTRA_VOICES) and opt_in.count("installed)") == len(EXTRA_VOICES)
    not_used = listed.split("not used:")[1]
    assert "awb_time" in not_used and all(f"espeak-ng {k}:" in not_used for k in ESPEAK_EXCLUDED)
    assert main(["synth", "--utterances", "3"]) == 2  # no --out: clear error
    assert "--out DIR is required" in capsys.readouterr().err


# ----------------------------------------------------------------------------- plan, errors, pieces

def test_plan_sizes_and_splits():
    plan = plan_corpus(hours=0.5, seed=0)
    assert 300 < len(plan) < 900
    assert {p.split for p in plan} == {"train", "valid", "test"}
    assert [p.split for p in plan].count("test") / len(plan) == pytest.approx(0.15, abs=0.02)
    default = plan_corpus(seed=0)  # 1 hour
    assert len(default) > len(plan)
    assert len({p.speaker.voice.name for p in default}) == len(VOICES)


@pytest.mark.parametrize("kwargs, match", [
    ({"utterances": 2}, "utterances must be"),
    ({"utterances": 5, "hours": 1.0}, "either utterances or hours"),
    ({"hours": 0}, "hours must be"),
    ({"utterances": 5, "voices": ["nope"]}, "unknown voice 'nope'"),
    ({"utterances": 5, "voices": ["flite_awb"]}, "at least two voices"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(SynthError, match=match):
        plan_corpus(**kwargs)


def test_missing_package_named(tmp_path, monkeypatch):
    import toposcope.synth.voices as voices

    real = shutil.which
    monkeypatch.setattr(voices.shutil, "which", lambda name: None if name == "flite" else real(name))
    with pytest.raises(MissingPackageError, match="apt-get install flite"):
        synthesize(tmp_path / "c", utterances=3, voices=FLITE2, progress=False)
    assert not (tmp_path / "c" / MANIFEST).exists()


def test_missing_fortunes_named(tmp_path):
    from toposcope.synth.sentences import _load

    with pytest.raises(MissingPackageError, match="fortunes-min"):
        _load(str(tmp_path / "nowhere"))


def test_sentence_filter():
    assert keep_sentence("The quick brown fox jumps over the lazy dog.")
    assert not keep_sentence("Only three words.")  # too short
    assert not keep_sentence("There are 42 reasons to stay here.")  # digits
    assert not keep_sentence("The NASA budget was cut again this year.")  # acronym
    assert not keep_sentence("Mr. Smith went to Washington on a bus.")  # abbreviation
    assert not keep_sentence(" ".join(["word"] * 21) + ".")
    parts = split_fortune_text("First one is here. Second one is there!\n\t-- Someone\n%\nThird entry, it says so.\n")
    assert parts == ["First one is here.", "Second one is there!", "Third entry, it says so."]
    sents = load_sentences()
    assert len(sents) > 1000 and sents == sorted(sents)
    assert all(keep_sentence(s) for s in sents[::97])


def test_espeak_table_is_canonical():
    for src, dst in ESPEAK_TO_ARPABET.items():
        assert dst is None or dst in PHONE_SET, src
    assert map_espeak("@") == "ah" and map_espeak("t#") == "d" and map_espeak("_:") == "sil"
    with pytest.raises(SynthError, match="no ARPAbet mapping"):
        map_espeak("Q!")


def test_finalize_clips_and_fills(tmp_path):
    """Labels past the audio are clipped (Flite kal16); a gap before the end becomes sil (diphones)."""
    from toposcope.synth import _finalize

    (tmp_path / "audio").mkdir()
    (tmp_path / ".synth").mkdir()
    t = np.arange(8000) / 8000  # 1.0 s at 8 kHz: resampled to 16 kHz
    sf.write(str(tmp_path / "a.wav"), 0.5 * np.sin(2 * np.pi * 200 * t), 8000)
    spk = VOICES["flite_slt"].speaker(1.0, 1.0)
    p = PlannedUtterance(0, "u0", "train", spk, "Hello there my good friend.")
    raw = {"wav": tmp_path / "a.wav", "stem": tmp_path / "a",
           "segs": [(0.2, "pau"), (0.5, "hh"), (0.9, "ax"), (1.3, "l"), (1.4, "pau")]}
    d = _finalize(p, raw, tmp_path)
    assert d["duration"] == pytest.approx(1.0)
    assert d["phones"] == [[0.0, 0.2, "sil"], [0.2, 0.5, "hh"], [0.5, 0.9, "ah"], [0.9, 1.0, "l"]]
    assert d["source_phones"][-1] == [0.9, 1.0, "l"]
    assert json.loads((tmp_path / ".synth" / "u0.json").read_text())["utterance"] == d
    assert read_audio(tmp_path / "audio" / "u0.wav").shape == (16000,)

    sf.write(str(tmp_path / "b.wav"), 0.5 * np.sin(2 * np.pi * 200 * t), 8000)
    raw = {"wav": tmp_path / "b.wav", "stem": tmp_path / "b", "segs": [(0.3, "s"), (0.7, "iy")]}
    d = _finalize(p, raw, tmp_path)
    assert d["phones"] == [[0.0, 0.3, "s"], [0.3, 0.7, "iy"], [0.7, 1.0, "sil"]]


def test_pitch_perturbation_scales_times_exactly(tmp_path):
    """Voices without native pitch control: resampling by 1/pitch, every time scaled by 1/pitch."""
    from toposcope.synth import _finalize

    (tmp_path / "audio").mkdir()
    (tmp_path / ".synth").mkdir()
    t = np.arange(16000) / 16000
    sf.write(str(tmp_path / "a.wav"), 0.5 * np.sin(2 * np.pi * 200 * t), 16000)
    spk = VOICES["flite_rms"].speaker(1.0, 1.15)
    p = PlannedUtterance(1, "u1", "test", spk, "Hello there my good friend.")
    d = _finalize(p, {"wav": tmp_path / "a.wav", "stem": tmp_path / "a", "segs": [(0.46, "s"), (1.0, "iy")]},
                  tmp_path)
    assert d["duration"] == pytest.approx(1 / 1.15, abs=1e-4)
    assert d["phones"][0][1] == pytest.approx(0.4, abs=1e-6)
    x = read_audio(tmp_path / "audio" / "u1.wav")
    f = np.argmax(np.abs(np.fft.rfft(x))) * 16000 / len(x)
    assert f == pytest.approx(230, abs=3)  # 200 Hz * 1.15


def test_all_or_nothing_and_resumable(tmp_path, monkeypatch):
    """An interrupted synthesis leaves no `out` (its work waits in `.out.partial`); the next call resumes
    there and only then `out` appears, whole. A non-empty folder that is no synthesized corpus needs force."""
    import toposcope.synth as synth

    out = tmp_path / "c"
    real, calls = synth._finalize, []

    def flaky(p, raw, where):
        calls.append(p.id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(p, raw, where)

    monkeypatch.setattr(synth, "_finalize", flaky)
    with pytest.raises(KeyboardInterrupt):
        synthesize(out, utterances=4, seed=5, voices=FLITE2, progress=False, jobs=1)
    assert not out.exists()
    partial = tmp_path / ".c.partial"
    kept = sorted(p.name for p in (partial / "audio").glob("*.wav"))
    assert len(kept) == 2
    mtimes = {n: (partial / "audio" / n).stat().st_mtime_ns for n in kept}
    monkeypatch.setattr(synth, "_finalize", real)
    c = synthesize(out, utterances=4, seed=5, voices=FLITE2, progress=False, jobs=1)
    assert len(c) == 4 and not partial.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert {n: (out / "audio" / n).stat().st_mtime_ns for n in kept} == mtimes  # reused, not redone
    # the same plan again: nothing to do, the folder is left as it is
    inode = (out / MANIFEST).stat().st_ino
    synthesize(out, utterances=4, seed=5, voices=FLITE2, progress=False, jobs=1)
    assert (out / MANIFEST).stat().st_ino == inode
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(SynthError, match=r"mine: exists and is not empty"):
        synthesize(other, utterances=3, seed=5, voices=FLITE2, progress=False, jobs=1)
    assert (other / "notes.txt").read_text() == "mine"
    synthesize(other, utterances=3, seed=5, voices=FLITE2, progress=False, jobs=1, force=True)
    assert not (other / "notes.txt").exists() and len(Corpus.load(other)) == 3


def test_voices_by_split(tiny_corpus):
    from toposcope.synth import voices_by_split

    v = voices_by_split(tiny_corpus)
    assert set(v) == {"all", "train", "valid", "test"}
    assert set(v["all"]) == set(v["train"]) | set(v["valid"]) | set(v["test"]) and v["all"] == sorted(v["all"])
    assert set(v["test"]).isdisjoint(v["train"])  # whole voices are held out for test
    assert v["test"] == sorted({u.extra["voice"] for u in tiny_corpus.split("test")})


# ----------------------------------------------------------------------------- the voice set (issue 14)

_RICH = ["The beige hue on the waters of the loch impressed all, including the French queen.",
         "Her curly hair and their poor tour were near the pure doors of the old tower.",
         "Pack my box with five dozen liquor jugs, then thank those who bathe at the zoo.",
         "Joyful measure: a boy's choice of the cute bottle, or a hot cup of butter and water."]


def _missing(voices) -> dict[str, str]:
    from toposcope.synth.voices import check_voices

    out = {}
    for v in voices:
        try:
            check_voices([v])
        except MissingPackageError as e:
            out[v.name] = str(e)
    return out


def test_every_voice_synthesizes_or_is_reported_missing(tmp_path):
    """One short sentence per voice through its engine and the canonical labelling; a voice whose
    package is missing here is named in a warning, never silently passed over."""
    import warnings

    missing = _missing(VOICES.values())
    if missing:
        warnings.warn(f"{len(missing)} voice(s) not synthesizable here: "
                      + "; ".join(f"{n} ({why})" for n, why in sorted(missing.items())))
    present = [v for v in VOICES.values() if v.name not in missing]
    if not present:
        pytest.skip("no synthesizer installed")
    sentence = "She sells sea shells by the quiet shore."
    plans = {v.name: PlannedUtterance(i, f"v{i:03d}", "train", v.speaker(1.0, 1.0), sentence)
             for i, v in enumerate(present)}
    done = _synthesize_plans(list(plans.values()), tmp_path)
    for name, p in plans.items():
        d = done[p.id]
        labels = [lab for _, _, lab in d["phones"]]
        assert set(labels) <= PHONE_SET and sum(lab != "sil" for lab in labels) >= 15, (name, labels)
        x = read_audio(tmp_path / d["audio"])
        assert 1.0 < d["duration"] < 6.0 and np.sqrt(np.mean(x ** 2)) > 0.01, name


def test_espeak_accents_mnemonics_map(tmp_path):
    """Every phoneme each English accent produces on phonetically rich sentences has an ARPAbet label
    (the whole sentence list was checked the same way when the table was written)."""
    from toposcope.synth.espeak import run_espeak_batch
    from toposcope.synth.voices import ESPEAK_ACCENTS

    plain = [VOICES[f"espeak_{a}"] for a in ESPEAK_ACCENTS]
    if _missing(plain):
        pytest.skip("espeak-ng not installed")
    items = [(v.speaker(1.0, 1.0), s, tmp_path / f"{v.engine_voice}-{k}")
             for v in plain for k, s in enumerate(_RICH)]
    raws = run_espeak_batch(items, tmp_path)
    assert len(raws) == len(items)
    for v in plain:
        labels = {lab for (_, _, stem) in items if stem.name.startswith(v.engine_voice + "-")
                  for _, lab in raws[stem]["segs"]}
        mapped = {map_espeak(lab) for lab in labels}  # raises on an unmapped mnemonic
        assert len(mapped - {None, "sil"}) >= 30, (v.name, sorted(labels))


def test_espeak_output_does_not_depend_on_the_batch(tmp_path):
    """The same utterance gives the same samples and labels whatever the worker synthesized before."""
    from toposcope.synth.espeak import run_espeak_batch

    a, b = VOICES["espeak_en-us+m3"], VOICES["espeak_en+f3"]
    if _missing([a, b]):
        pytest.skip("espeak-ng not installed")
    s = "The quick brown fox jumps over the lazy dog."
    items = [(a.speaker(1.0, 1.0), s, tmp_path / "a1"), (b.speaker(1.2, 1.0), s, tmp_path / "b"),
             (a.speaker(1.0, 1.0), s, tmp_path / "a2")]
    raws = run_espeak_batch(items, tmp_path)
    assert raws[tmp_path / "a1"]["segs"] == raws[tmp_path / "a2"]["segs"]
    assert (tmp_path / "a1.wav").read_bytes() == (tmp_path / "a2.wav").read_bytes()


def test_espeak_variants_all_used_or_excluded():
    """Every variant of the installed espeak-ng 1.51 is a voice or listed with its reason; each variant
    is spoken in exactly one accent, every accent has its variants and is a voice alone too."""
    from toposcope.synth.voices import (ESPEAK_ACCENTS, ESPEAK_EXCLUDED, ESPEAK_TEST_ACCENTS, ESPEAK_VARIANTS,
                                        espeak_pairs)

    pairs = espeak_pairs()
    assert list(pairs) == list(ESPEAK_VARIANTS) and not set(ESPEAK_VARIANTS) & set(ESPEAK_EXCLUDED)
    per_accent = {a: sum(1 for acc in pairs.values() if acc == a) for a in ESPEAK_ACCENTS}
    assert min(per_accent.values()) >= 11 and max(per_accent.values()) <= 12, per_accent
    names = {v.engine_voice for v in VOICES.values() if v.engine == "espeak"}
    assert names == set(ESPEAK_ACCENTS) | {f"{a}+{var}" for var, a in pairs.items()}
    assert set(ESPEAK_TEST_ACCENTS) < set(ESPEAK_ACCENTS)
    assert all(" " not in n for n in VOICES)  # "Mr serious" is voice ..+Mr_serious
    try:
        from toposcope.synth.espeak import _data_dir

        data = Path(_data_dir())
    except MissingPackageError:
        pytest.skip("espeak-ng not installed")
    import ctypes

    lib = ctypes.CDLL("libespeak-ng.so.1")
    lib.espeak_Info.restype = ctypes.c_char_p
    if lib.espeak_Info(None) != b"1.51":
        pytest.skip("the variant list was checked on espeak-ng 1.51")
    installed = {p.name for p in (data / "voices" / "!v").iterdir()}
    assert installed == set(ESPEAK_VARIANTS) | (set(ESPEAK_EXCLUDED) - {"mb/* (other)"})
    # the opt-in MBROLA list is every voice of voices/mb that speaks English (a "language en" line)
    from toposcope.synth.voices import ESPEAK_MBROLA_ENGLISH

    english = {f.name for f in (data / "voices" / "mb").iterdir()
               if any(line.startswith("language en") for line in f.read_text(errors="replace").splitlines())}
    assert english == set(ESPEAK_MBROLA_ENGLISH)


def test_missing_espeak_variant_named():
    from toposcope.synth.espeak import check_espeak

    if _missing([VOICES["espeak_en-us+m3"]]):
        pytest.skip("espeak-ng not installed")
    check_espeak(["en-us+m3", "en-gb-x-gbcwmd+Mr serious"])
    with pytest.raises(MissingPackageError, match=r"variant 'nope'.*apt-get install espeak-ng-data"):
        check_espeak(["en-us+nope"])  # espeak-ng itself would silently speak en-us without it


def test_test_voices_held_out_in_a_2h_plan():
    """The demo-size plan: every voice appears; test voices (one per engine at least, a whole espeak-ng
    accent with its variants) never in train/valid; test speakers never in train."""
    from toposcope.synth.voices import ESPEAK_TEST_ACCENTS, espeak_pairs

    plan = plan_corpus(hours=2.0, seed=0)
    by_split = {s: {p.speaker.voice.name for p in plan if p.split == s} for s in ("train", "valid", "test")}
    assert by_split["train"] | by_split["valid"] | by_split["test"] == set(VOICES)
    assert by_split["test"] == set(DEFAULT_TEST_VOICES)
    assert not (by_split["train"] | by_split["valid"]) & set(DEFAULT_TEST_VOICES)
    assert {VOICES[v].engine for v in DEFAULT_TEST_VOICES} == {"festival", "flite", "espeak"}
    speakers = {s: {p.speaker.id for p in plan if p.split == s} for s in ("train", "test")}
    assert speakers["test"] and not speakers["test"] & speakers["train"]
    # the held-out accents and their variants are unseen in train
    train_espeak = {VOICES[v].engine_voice for v in by_split["train"] if VOICES[v].engine == "espeak"}
    assert not {ev.partition("+")[0] for ev in train_espeak} & set(ESPEAK_TEST_ACCENTS)
    held_variants = {var for var, a in espeak_pairs().items() if a in ESPEAK_TEST_ACCENTS}
    assert held_variants and not {ev.partition("+")[2] for ev in train_espeak} & held_variants
    # each engine speaks about a third of every split
    for split in ("train", "test"):
        n = [sum(p.split == split and p.speaker.voice.engine == e for p in plan)
             for e in ("festival", "flite", "espeak")]
        assert max(n) - min(n) <= 2, (split, n)


# ----------------------------------------------------------------------------- opt-in voices (contrib/non-free)

def test_mrpa_map_covers_festivals_british_phone_set():
    """Every phone of Festival's own ``mrpa`` phone set maps onto the canonical inventory."""
    from toposcope.phones import MRPA_MAP, map_phone

    scm = Path("/usr/share/festival/mrpa_phones.scm")
    if not scm.is_file():
        pytest.skip("festival not installed")
    text = scm.read_text(errors="replace")
    members = text[text.index(";; Phone set members"):]
    members = members[:members.index("\n  )")]  # the list that closes the phone set's members
    # one line per phone: its name, then its 8 features, e.g. "(uh  +   s   2   3   -   0   0   0)"
    phones = [line.split()[0].lstrip("(") for line in members.splitlines() if len(line.split()) == 9]
    assert len(phones) == 45 and "@@" in phones and "u@" in phones and "#" in phones
    for ph in phones:
        assert map_phone(ph, MRPA_MAP) in PHONE_SET, ph
    # by hand: STRUT, LOT, NURSE, the centring diphthong of "hair", and h
    assert [map_phone(x, MRPA_MAP) for x in ("uh", "o", "@@", "e@", "h", "oo")] == ["ah", "aa", "er", "eh", "hh",
                                                                                      "ao"]


def test_voice_sets_and_extra_names():
    from toposcope.synth.voices import EXTRA_VOICES, get_voices

    assert len(EXTRA_VOICES) == 26 and not set(EXTRA_VOICES) & set(VOICES)
    assert [v.name for v in get_voices("extra")] == list(EXTRA_VOICES)
    both = get_voices("default,extra")
    assert [v.name for v in both] == list(VOICES) + list(EXTRA_VOICES)
    assert [v.name for v in get_voices(["festival_us1_mbrola", "extra"])][:2] == ["festival_us1_mbrola",
                                                                                    "festival_rab_diphone"]
    assert len(get_voices(["extra", "extra", "festival_us2_mbrola"])) == 26  # no repeats
    assert get_voices() == list(VOICES.values())  # the default corpus never takes them
    with pytest.raises(SynthError, match=r"unknown voice 'extras' \(did you mean extra\?\); the sets are default, "
                                         r"extra, and `toposcope synth --list-voices` lists the 132 voices"):
        get_voices("extras")
    with pytest.raises(SynthError, match=r"'espeak_mb-de4' \(did you mean espeak_mb-de4-en"):
        get_voices("espeak_mb-de4")
    assert {v.phoneset for v in EXTRA_VOICES.values()} == {"radio", "mrpa", "espeak"}
    assert sum(v.engine == "espeak" for v in EXTRA_VOICES.values()) == 20
    assert {v.phoneset for v in VOICES.values() if v.engine == "espeak"} == {"espeak"}


def test_extra_voices_leave_the_test_split_alone():
    """Adding the opt-in voices changes train/valid only: the test split of a plan (voices, speakers,
    sentences) is the default plan's, utterance for utterance."""
    from toposcope.synth.voices import EXTRA_VOICES

    base = plan_corpus(utterances=600, seed=0)
    more = plan_corpus(utterances=600, seed=0, voices="default,extra")
    test = [(p.id, p.speaker.id, p.sentence) for p in base if p.split == "test"]
    assert test and test == [(p.id, p.speaker.id, p.sentence) for p in more if p.split == "test"]
    train = {p.speaker.voice.name for p in more if p.split == "train"}
    assert set(EXTRA_VOICES) <= train
    # the train sentences are the same ones; only who speaks them changes
    assert [p.sentence for p in base if p.split == "train"] == [p.sentence for p in more if p.split == "train"]
    # four share groups (espeak-ng's MBROLA voices apart from its formant voices), a quarter of train each
    n = collections.Counter(p.speaker.voice.share_group for p in more if p.split == "train")
    assert set(n) == {"festival", "flite", "espeak", "espeak-mbrola"} and max(n.values()) - min(n.values()) <= 1


def test_missing_extra_voice_says_how_to_get_it(monkeypatch):
    import toposcope.synth.voices as voices

    monkeypatch.setitem(voices._FESTIVAL_VOICE_DIRS, "us2_mbrola", "/nonexistent/us2_mbrola")
    monkeypatch.setattr(voices, "MBROLA_DIR", Path("/nonexistent"))
    with pytest.raises(MissingPackageError) as err:
        voices.check_voices([voices.EXTRA_VOICES["festival_us2_mbrola"], voices.EXTRA_VOICES["espeak_mb-de4-en"],
                             voices.VOICES["flite_awb"]])
    msg = str(err.value)
    assert "Festival voice us2_mbrola not found (package festvox-us2)" in msg
    assert "MBROLA database de4 not found in /nonexistent (package mbrola-de4)" in msg
    assert msg.endswith("apt-get install festvox-us2 mbrola-de4") and msg.count("contrib and non-free") == 1
    real = shutil.which
    monkeypatch.setattr(voices.shutil, "which", lambda name: None if name == "mbrola" else real(name))
    monkeypatch.setitem(voices._FESTIVAL_VOICE_DIRS, "us1_mbrola", "/")  # a directory that exists
    with pytest.raises(MissingPackageError, match="program 'mbrola' not found"):
        voices.check_voices([voices.EXTRA_VOICES["festival_us1_mbrola"]])


def test_finalize_maps_mrpa_labels(tmp_path):
    from toposcope.synth import _finalize
    from toposcope.synth.voices import EXTRA_VOICES

    (tmp_path / "audio").mkdir()
    (tmp_path / ".synth").mkdir()
    t = np.arange(16000) / 16000
    sf.write(str(tmp_path / "a.wav"), 0.5 * np.sin(2 * np.pi * 120 * t), 16000)
    spk = EXTRA_VOICES["festival_rab_diphone"].speaker(1.0, 1.15)  # native pitch: no resampling
    p = PlannedUtterance(0, "u0", "train", spk, "Her hair.")
    raw = {"wav": tmp_path / "a.wav", "stem": tmp_path / "a",
           "segs": [(0.1, "#"), (0.3, "h"), (0.5, "@@"), (0.6, "h"), (0.9, "e@"), (1.0, "#")]}
    d = _finalize(p, raw, tmp_path)
    assert d["phones"] == [[0.0, 0.1, "sil"], [0.1, 0.3, "hh"], [0.3, 0.5, "er"], [0.5, 0.6, "hh"],
                           [0.6, 0.9, "eh"], [0.9, 1.0, "sil"]]
    assert d["source_phones"][2] == [0.3, 0.5, "@@"] and d["duration"] == pytest.approx(1.0)


def test_every_extra_voice_synthesizes_where_installed(tmp_path):
    """The opt-in voices, where this machine has them (a stock Debian has not: skipped there), through
    their engine and the canonical labelling. Per voice: F0 of the pitch-1.15 variant over the 1.0 one
    (autocorrelation on the vowels; Festival shifts F0 natively, espeak-ng by speed perturbation), and
    label/audio alignment (energy above 4 kHz a larger share in s/sh/z than in vowels), which catches an
    MBROLA voice read at espeak-ng's 22 050 Hz instead of its database's own rate."""
    from toposcope.synth.voices import EXTRA_VOICES

    present = [v for v in EXTRA_VOICES.values() if v.name not in _missing([v])]
    if not present:
        pytest.skip("no opt-in voice installed (Debian contrib/non-free)")
    sentence = "Who is the owner of the blue car near the old house? She sees his shoes."
    # slow speech (rate 0.85): long vowels, so that most of them hold the 40 ms F0 window
    plans = [PlannedUtterance(2 * i + j, f"x{i:02d}{j}", "train", v.speaker(0.85, pitch), sentence)
             for i, v in enumerate(present) for j, pitch in enumerate((1.0, 1.15))]
    done = _synthesize_plans(plans, tmp_path)
    f0, hf = {}, {}
    for p in plans:
        d = done[p.id]
        labels = [lab for _, _, lab in d["phones"]]
        assert set(labels) <= PHONE_SET and sum(lab in VOWELS for lab in labels) >= 12, (p.speaker.id, labels)
        x = read_audio(tmp_path / d["audio"])
        f0[p.speaker.id] = (labels, _f0_per_vowel(x, d["phones"]))
        hf[p.speaker.id] = _hf_share(x, d["phones"])
    for v in present:
        (lab1, f1), (lab2, f2) = f0[v.speaker(0.85, 1.0).id], f0[v.speaker(0.85, 1.15).id]
        assert lab1 == lab2, v.name  # the same phones: only F0 (and with speed perturbation, time) differs
        ratios = [b / a for a, b in zip(f1, f2) if a and b]
        assert len(ratios) >= 4 and 1.10 < float(np.median(ratios)) < 1.20, (v.name, ratios)
        fric, vowel = hf[v.speaker(0.85, 1.0).id]
        assert fric > 4 * vowel, (v.name, fric, vowel)


def _synthesize_plans(plans: list[PlannedUtterance], out: Path) -> dict[str, dict]:
    """Each planned utterance through its engine and the canonical labelling into the corpus folder ``out``,
    as ``synthesize`` runs a task (``toposcope.synth._run_task``, one task per engine); fails on any failure.
    Returns ``{id: utterance dict}``."""
    from toposcope.synth import _run_task

    (out / "audio").mkdir()
    (out / ".synth").mkdir()
    (out / "work").mkdir()
    done, fails = {}, []
    for engine in sorted({p.speaker.voice.engine for p in plans}):
        results, failed = _run_task((engine, [p for p in plans if p.speaker.voice.engine == engine]),
                                    out / "work", out)
        done.update(results)
        fails += failed
    assert not fails, f"no output for {fails}"
    return done


def _f0_per_vowel(x, phones, sr=16000) -> list[float | None]:
    """F0 at the middle of every vowel segment (40 ms autocorrelation, 60-400 Hz; None where unvoiced or
    too short). Paired vowel by vowel between two variants, octave errors of one vowel drop out of the
    median ratio."""
    out = []
    for s, e, lab in phones:
        if lab not in VOWELS:
            continue
        m = int((s + e) / 2 * sr)
        if e - s < 0.045 or m < 320:
            out.append(None)
            continue
        seg = x[m - 320:m + 320] - x[m - 320:m + 320].mean()
        ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
        lo, hi = sr // 400, sr // 60
        k = lo + int(np.argmax(ac[lo:hi]))
        out.append(sr / k if ac[k] > 0.3 * ac[0] else None)
    return out


def _hf_fractions(x, phones, sr=16000) -> dict[str, list[float]]:
    """Share of each segment's energy above 4 kHz, for the s/sh/z segments ("fric") and the vowels."""
    out = {"fric": [], "vowel": []}
    for s, e, lab in phones:
        seg = x[int(s * sr):int(e * sr)]
        if len(seg) < 256:
            continue
        p = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
        frac = p[len(p) // 2:].sum() / (p.sum() + 1e-12)
        if lab in ("s", "sh", "z"):
            out["fric"].append(frac)
        elif lab in VOWELS:
            out["vowel"].append(frac)
    return out


def _hf_share(x, phones) -> tuple[float, float]:
    """Median share of energy above 4 kHz in the s/sh/z segments and in the vowels."""
    hf = _hf_fractions(x, phones)
    return float(np.median(hf["fric"])), float(np.median(hf["vowel"]))


def test_extra_voices_script_installs_every_package():
    """``make extra-voices`` installs exactly the packages the opt-in voices name (each mbrola-* depends on mbrola)."""
    import re

    from toposcope.synth.voices import EXTRA_VOICES

    script = (Path(__file__).resolve().parents[1] / "scripts" / "extra_voices.sh").read_text()
    pkgs = set(re.search(r"^PKGS=\(([^)]*)\)", script, re.M).group(1).split())
    assert pkgs == {v.package for v in EXTRA_VOICES.values()}
    assert "Components: contrib non-free" in script
