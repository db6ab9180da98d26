"""The embedded default corpus: speech synthesized locally with exact phone timings (docs/method.md § Data and phones).

Voices (106, :data:`.voices.VOICES`; ``toposcope synth --list-voices``): Festival kal_diphone,
ked_diphone, cmu_us_slt_arctic_hts (one process per batch, :mod:`.festival`); Flite awb, rms, slt,
kal16 (one process per utterance, :mod:`.flite`); espeak-ng: the eight English accents alone and
91 voice variants, each spoken in one accent (phoneme events via the C library, mapped to
ARPAbet, :mod:`.espeak`). What is left out and why: :mod:`.voices`.

``synthesize(out, utterances=N | hours=H, seed=S)`` writes a corpus directory in the native
format (docs/method.md § Data and phones: ``manifest.jsonl`` + ``audio/*.wav``, 16 kHz mono) with canonical labels
(docs/method.md § Data and phones: Festival/Flite ``ax`` -> ``ah``, ``pau`` -> ``sil``; originals in
``source_phones``) and returns ``Corpus.load(out)``.

Plan (deterministic for a seed, and prefix-stable: utterance ``i`` depends only on ``seed`` and
``i``, so a bigger corpus with the same seed contains the smaller one):

* the sentence list (see :mod:`.sentences`) is permuted with the seed and cut into three
  disjoint pools: ``valid`` (10 %), ``test`` (10 %), ``train`` (the rest) -- valid sentences are
  never spoken in train;
* utterances follow a fixed 20-slot pattern (15 train, 2 valid, 3 test), so every corpus of
  three or more utterances has all three splits;
* ``test`` uses whole held-out voices (:data:`.voices.DEFAULT_TEST_VOICES`: one Festival, one
  Flite voice and a whole espeak-ng accent with its variants); ``train`` and ``valid`` use the
  other voices; each split goes round-robin over the engines and, within an engine, over its
  voices (so each engine speaks about a third of every split however many voices it has, and
  small corpora still hold every engine; espeak-ng's opt-in MBROLA voices count as an engine of
  their own, so with ``voices="default,extra"`` train and valid go round four groups); test
  sentences come from their own pool too;
* each utterance draws a rate and a pitch factor; ``(voice, rate, pitch)`` is its ``speaker``.

All or nothing, and resumable (``docs/bad-inputs.md``): the corpus is built in ``.<out>.partial``
beside ``out`` and renamed to ``out`` when complete, so ``out`` only ever appears whole. Each
finished utterance is its WAV plus a JSON sidecar under ``.synth/``; an interrupted or failed
synthesis keeps the partial folder, and the next call for the same ``out`` continues in it. A
synthesis into an earlier synthesized corpus (a folder holding ``.synth/``) reuses every utterance
that matches the plan (hard links) and then replaces the folder atomically; a corpus that already
is the plan is returned untouched. Any other non-empty ``out`` is refused unless ``force``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from .._util import atomic_dir, progress_enabled, usable_cores, write_text_atomic
from ..audio import SAMPLE_RATE, write_wav
from ..corpus import MANIFEST, Corpus, Utterance, write_manifest
from ..phones import FESTIVAL_MAP, MRPA_MAP, SILENCE, map_phone
from ..text import normalize_text
from .espeak import map_espeak
from .sentences import load_sentences
from .voices import (DEFAULT_TEST_VOICES, PITCHES, RATES, VOICES, MissingPackageError, Speaker,
                     SynthError, Voice, check_voices, get_voices)

__all__ = [
    "synthesize", "plan_corpus", "PlannedUtterance", "SynthError", "MissingPackageError", "VOICES",
    "Voice", "Speaker", "DEFAULT_TEST_VOICES", "RATES", "PITCHES", "DEFAULT_HOURS", "voices_by_split",
]

DEFAULT_HOURS = 1.0
#: Split of each block of 20 utterances (prefix-balanced so tiny corpora hold all three splits).
_PATTERN = ("train", "valid", "test", "train", "train", "train", "train", "train", "train", "test",
            "train", "train", "valid", "train", "train", "train", "test", "train", "train", "train")
_SIDE = ".synth"
#: Bumped when the output for the same plan changes (old sidecars are then re-synthesized).
#: 2: espeak-ng synthesizes every utterance from a fresh library state (before, an utterance's samples
#: and phoneme times depended on the utterances synthesized before it in its batch).
_FORMAT = 2
_PEAK = 0.9


@dataclass(frozen=True)
class PlannedUtterance:
    index: int
    id: str
    split: str
    speaker: Speaker
    sentence: str

    @property
    def key(self) -> dict:
        return {"format": _FORMAT, "speaker": self.speaker.id, "sentence": self.sentence}


def _estimate_seconds(sentence: str, spk: Speaker) -> float:
    """Rough audio length (calibrated on the voices here) used only to size ``hours=`` corpora."""
    a, b = spk.voice.length_model
    return (a + b * len(sentence)) / (spk.rate * spk.perturb)


def _by_engine(voices: list[Voice]) -> list[list[Voice]]:
    """The voices grouped by engine (:attr:`.voices.Voice.share_group`: the engine, but espeak-ng's MBROLA
    voices apart; groups and voices in the order given)."""
    groups: dict[str, list[Voice]] = {}
    for v in voices:
        groups.setdefault(v.share_group, []).append(v)
    return list(groups.values())


def plan_corpus(*, utterances: int | None = None, hours: float | None = None, seed: int = 0,
                voices=None) -> list[PlannedUtterance]:
    """The deterministic list of utterances ``synthesize`` would produce (no synthesis)."""
    if utterances is not None and hours is not None:
        raise SynthError("give either utterances or hours, not both")
    if utterances is None and hours is None:
        hours = DEFAULT_HOURS
    if utterances is not None and (not isinstance(utterances, (int, np.integer)) or utterances < 3):
        raise SynthError(f"utterances must be an integer >= 3 (one per split at least), got {utterances!r}")
    if hours is not None and not (hours > 0 and math.isfinite(hours)):
        raise SynthError(f"hours must be a positive number, got {hours!r}")
    vs = get_voices(voices)
    test_v = [v for v in vs if v.name in DEFAULT_TEST_VOICES]
    train_v = [v for v in vs if v.name not in DEFAULT_TEST_VOICES]
    if not train_v:  # only test voices chosen: keep the first for train/valid
        train_v, test_v = test_v[:1], test_v[1:]
    if not test_v:
        if len(train_v) < 2:
            raise SynthError("at least two voices are needed (whole voices are held out for the test split); "
                             f"got {', '.join(v.name for v in vs)}")
        test_v = train_v[-1:]
        train_v = train_v[:-1]
    voices_of = {"train": _by_engine(train_v), "valid": _by_engine(train_v), "test": _by_engine(test_v)}

    sentences = load_sentences()
    order = np.random.default_rng([int(seed), 0xF0]).permutation(len(sentences))
    n_hold = max(1, len(sentences) // 10)
    pools = {"valid": order[:n_hold], "test": order[n_hold:2 * n_hold], "train": order[2 * n_hold:]}

    plan, counts, total = [], {"train": 0, "valid": 0, "test": 0}, 0.0
    i = 0
    while True:
        if utterances is not None and i >= utterances:
            break
        if hours is not None and total >= hours * 3600:
            break
        split = _PATTERN[i % len(_PATTERN)]
        k = counts[split]
        counts[split] += 1
        groups = voices_of[split]
        rng = np.random.default_rng([int(seed), 0x5EED, i])
        vlist = groups[k % len(groups)]
        voice = vlist[(k // len(groups)) % len(vlist)]
        spk = voice.speaker(RATES[rng.integers(len(RATES))], PITCHES[rng.integers(len(PITCHES))])
        pool = pools[split]
        sentence = sentences[int(pool[k % len(pool)])]
        plan.append(PlannedUtterance(i, f"synth-{i:06d}", split, spk, sentence))
        total += _estimate_seconds(sentence, spk)
        i += 1
    return plan


# ----------------------------------------------------------------------------- post-processing

def _finalize(p: PlannedUtterance, raw: dict, out: Path) -> dict:
    """Engine output -> 16 kHz WAV + canonical, gap-free, clipped labels; writes WAV and sidecar."""
    src = raw["wav"]
    try:
        wave, sr = sf.read(str(src), dtype="float32", always_2d=True)
    except Exception as e:
        raise SynthError(f"{src}: the synthesizer wrote unreadable audio ({e})") from None
    wave = wave.mean(axis=1)
    factor = Fraction(SAMPLE_RATE, int(sr)) / Fraction(p.speaker.perturb).limit_denominator(100)
    if factor != 1:
        from scipy.signal import resample_poly
        wave = resample_poly(wave, factor.numerator, factor.denominator).astype(np.float32)
    tscale = float(Fraction(int(sr)) * factor / SAMPLE_RATE)  # source seconds -> output seconds
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak <= 0:
        raise SynthError(f"{src}: the synthesizer produced silence for {p.sentence!r}")
    wave = wave * (_PEAK / peak)
    duration = len(wave) / SAMPLE_RATE

    # end times -> contiguous segments clipped to the audio; a segment shorter than 0.1 ms
    # (zero-length events, labels past the end of the audio) is absorbed by its neighbours
    src_segs, prev = [], 0.0
    for end, lab in raw["segs"]:
        e = min(end * tscale, duration)
        if e - prev < 1e-4:
            continue
        src_segs.append((prev, e, lab))
        prev = e
    phones: list[list] = []
    phoneset = p.speaker.voice.phoneset
    for s, e, lab in src_segs:
        if phoneset == "espeak":
            c = map_espeak(lab)
        else:
            c = map_phone(lab, MRPA_MAP if phoneset == "mrpa" else FESTIVAL_MAP)
        if c is None:  # espeak's glottal stop: merged into its left neighbour (or sil)
            if phones and abs(phones[-1][1] - s) < 1e-9:
                phones[-1][1] = e
            else:
                phones.append([s, e, SILENCE])
            continue
        if phones and c == SILENCE and phones[-1][2] == SILENCE and abs(phones[-1][1] - s) < 1e-9:
            phones[-1][1] = e
        else:
            phones.append([s, e, c])
    if not phones:
        raise SynthError(f"{src}: no phone segments inside the audio for {p.sentence!r}")
    if phones[0][0] > 0:  # gap at the start
        if phones[0][2] == SILENCE:
            phones[0][0] = 0.0
        else:
            phones.insert(0, [0.0, phones[0][0], SILENCE])
    if phones[-1][1] < duration:  # gap at the end (diphone audio runs past the last label)
        if phones[-1][2] == SILENCE or duration - phones[-1][1] < 1e-3:
            phones[-1][1] = duration
        else:
            phones.append([phones[-1][1], duration, SILENCE])
    words = None
    if raw.get("words") is not None:
        words, last = [], 0.0
        for s, e, w in raw["words"]:
            s, e = max(s * tscale, last), min(e * tscale, duration)
            if e - s >= 1e-4:
                words.append((s, e, normalize_text(w) or w.lower()))
                last = e
    utt = Utterance(
        id=p.id, audio=f"audio/{p.id}.wav", speaker=p.speaker.id, text=normalize_text(p.sentence),
        duration=duration, phones=[tuple(x) for x in phones], words=words, split=p.split,
        source_phones=src_segs,
        extra={"voice": p.speaker.voice.name, "rate": p.speaker.rate, "pitch": p.speaker.pitch,
               "source_text": p.sentence},
    )
    utt.validate(f"synthesized {src}")
    write_wav(out / utt.audio, wave)
    d = utt.to_dict()
    side = out / _SIDE / f"{p.id}.json"
    write_text_atomic(side, json.dumps({"key": p.key, "utterance": d}, ensure_ascii=False))
    for suffix in (".wav", ".segs", ".words"):
        Path(str(raw["stem"]) + suffix).unlink(missing_ok=True)
    return d


def _load_done(out: Path, p: PlannedUtterance) -> dict | None:
    side = out / _SIDE / f"{p.id}.json"
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
        if data.get("key") != p.key or data["utterance"]["audio"] != f"audio/{p.id}.wav" \
                or not (out / data["utterance"]["audio"]).is_file():
            return None
    except (OSError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return None  # a damaged sidecar: synthesize the utterance again
    return data["utterance"]




# ----------------------------------------------------------------------------- synthesis

def voices_by_split(corpus) -> dict[str, list[str]]:
    """The voices of a synthesized corpus: ``{"all": [...], "train": [...], ...}`` (sorted names; a corpus
    without voice information counts each speaker as a voice)."""
    def names(utts) -> list[str]:
        return sorted({u.extra.get("voice", u.speaker) for u in utts})

    return {"all": names(corpus), **{split: names(corpus.split(split)) for split in corpus.summary()["splits"]}}


def synthesize(out, *, utterances: int | None = None, hours: float | None = None, seed: int = 0,
               jobs: int | None = None, voices=None, progress: bool = True, force: bool = False) -> Corpus:
    """Synthesize the embedded default corpus into ``out`` and return ``Corpus.load(out)``.

    ``utterances`` or ``hours`` (approximate; default 1 hour) sets the size; ``voices`` restricts
    the voices (names from :data:`VOICES`); ``jobs`` worker processes (default: all cores).
    All or nothing and resumable (see the module docstring); ``force`` replaces a non-empty ``out``
    that is not a synthesized corpus.
    """
    out = Path(out)
    plan = plan_corpus(utterances=utterances, hours=hours, seed=seed, voices=voices)
    check_voices(sorted({p.speaker.voice for p in plan}, key=lambda v: v.name))
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer))):
        raise SynthError(f"jobs must be an integer >= 1, got {jobs!r}")
    jobs = usable_cores() if jobs is None else int(jobs)
    if jobs < 1:
        raise SynthError(f"jobs must be >= 1, got {jobs}")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise SynthError(f"{out}: exists and is not a directory")
    earlier = (out / _SIDE).is_dir() and not out.is_symlink()
    if earlier and _is_complete(out, plan):
        return Corpus.load(out)
    with atomic_dir(out, force=force or earlier, resumable=True, error=SynthError) as tmp:
        _synthesize_into(tmp, out, plan, jobs, progress, reuse=out if earlier else None)
    return Corpus.load(out)


def _manifest_text(utts) -> str:
    return "".join(json.dumps(u.to_dict(), ensure_ascii=False) + "\n" for u in utts)


def _is_complete(out: Path, plan: list[PlannedUtterance]) -> bool:
    """``out`` holds exactly this plan: every sidecar matches, every WAV exists, the manifest is theirs."""
    done = [_load_done(out, p) for p in plan]
    if any(d is None for d in done):
        return False
    try:
        have = (out / MANIFEST).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return have == _manifest_text(Utterance.from_dict(d) for d in done)


def _reuse(src: Path, dst: Path, p: PlannedUtterance) -> dict | None:
    """Hard-link (or copy) a finished utterance of the plan from an earlier corpus ``src`` into ``dst``."""
    d = _load_done(src, p)
    if d is None:
        return None
    for rel in (d["audio"], f"{_SIDE}/{p.id}.json"):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(src / rel, target)
        except OSError:
            shutil.copy2(src / rel, target)
    return d


def _synthesize_into(out: Path, final: Path, plan: list[PlannedUtterance], jobs: int, progress: bool,
                     reuse: Path | None) -> None:
    """Synthesize ``plan`` into the (partial) folder ``out``; ``final`` names the corpus in messages."""
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / _SIDE).mkdir(parents=True, exist_ok=True)
    work = out / _SIDE / "work"
    work.mkdir(parents=True, exist_ok=True)

    done: dict[str, dict] = {}
    todo: list[PlannedUtterance] = []
    for p in plan:
        d = _load_done(out, p)
        if d is None and reuse is not None:
            d = _reuse(reuse, out, p)
        if d is not None:
            done[p.id] = d
        else:
            todo.append(p)

    tasks = _make_tasks(todo, jobs)
    failures: list[str] = []
    from tqdm.auto import tqdm

    with tqdm(total=len(plan), initial=len(done), desc="synth", unit="utt",
              disable=not progress_enabled(progress)) as bar:
        if tasks:
            with ThreadPoolExecutor(max_workers=jobs) as ex:
                futs = [ex.submit(_run_task, t, work, out) for t in tasks]
                try:
                    for f in as_completed(futs):
                        res, fails = f.result()
                        done.update(res)
                        failures.extend(fails)
                        bar.update(len(res) + len(fails))
                except BaseException:  # interrupted: finished utterances stay on disk for a resume
                    for f in futs:
                        f.cancel()
                    raise
    if failures:
        if len(failures) > max(2, 0.05 * len(plan)):
            raise SynthError(f"{final}: synthesis failed for {len(failures)} of {len(plan)} utterances, e.g. "
                             + "; ".join(failures[:3]) + f" ({final} was not written; the finished "
                             f"utterances are kept in {out} for the next run)")
        warnings.warn(f"{final}: skipped {len(failures)} utterance(s) the synthesizer failed on: "
                      + "; ".join(failures[:3]), stacklevel=3)
    utts = [Utterance.from_dict(done[p.id], f"{out / _SIDE / p.id}.json") for p in plan if p.id in done]
    keep = {u.id for u in utts}
    for f in [*(out / "audio").glob("*.wav"), *(out / _SIDE).glob("*.json")]:  # left by another plan
        if f.stem not in keep:
            f.unlink(missing_ok=True)
    write_manifest(out / MANIFEST, utts)
    try:
        work.rmdir()
    except OSError:
        pass


def _make_tasks(todo: list[PlannedUtterance], jobs: int) -> list[tuple[str, list[PlannedUtterance]]]:
    """Festival: batches (one process each, grouped by voice); Flite/espeak: one utterance each."""
    by_engine: dict[str, list[PlannedUtterance]] = {}
    for p in todo:
        by_engine.setdefault(p.speaker.voice.engine, []).append(p)
    tasks: list[tuple[str, list[PlannedUtterance]]] = []
    for engine in ("festival", "espeak"):  # one process per batch
        ps = sorted(by_engine.pop(engine, []), key=lambda p: (p.speaker.voice.name, p.index))
        if ps:
            size = max(4, min(60, math.ceil(len(ps) / (jobs * 3))))
            tasks += [(engine, ps[i:i + size]) for i in range(0, len(ps), size)]
    for engine, ps in by_engine.items():
        size = max(1, min(20, math.ceil(len(ps) / (jobs * 3))))
        tasks += [(engine, ps[i:i + size]) for i in range(0, len(ps), size)]
    tasks.sort(key=lambda t: -len(t[1]) * (1 if t[0] == "flite" else 3))  # longest first
    return tasks


def _run_task(task, work: Path, out: Path):
    engine, ps = task
    results, fails = {}, []
    if engine in ("festival", "espeak"):
        if engine == "festival":
            from .festival import run_festival_batch as run_batch
        else:
            from .espeak import run_espeak_batch as run_batch
        raws = run_batch([(p.speaker, p.sentence, work / p.id) for p in ps], work)
        for p in ps:
            raw = raws.get(work / p.id)
            if raw is None:
                fails.append(f"{p.id} ({p.speaker.id}: {p.sentence!r})")
                continue
            raw["stem"] = work / p.id
            try:
                results[p.id] = _finalize(p, raw, out)
            except ValueError as e:  # SynthError, CorpusError, UnknownPhoneError: skip and report
                fails.append(f"{p.id}: {e}")
        return results, fails
    from .flite import run_flite
    for p in ps:
        try:
            raw = run_flite(p.speaker, p.sentence, work / p.id)
            raw["stem"] = work / p.id
            results[p.id] = _finalize(p, raw, out)
        except ValueError as e:
            fails.append(f"{p.id}: {e}")
    return results, fails
