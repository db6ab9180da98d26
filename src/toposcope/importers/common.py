"""Code shared by every importer (and by ``toposcope align``): reading any audio, mapping labels,
assigning splits, writing ``OUT/audio`` + ``OUT/manifest.jsonl``, skip-and-report (docs/method.md § Data and phones, §2.4, §9),
and the corpus check behind ``toposcope check``.

An importer turns its source files into :class:`Candidate` objects: an id, the source file(s) to
name in messages, and a ``build()`` callable returning ``(wave_16k, Utterance)``. :func:`run_import`
builds, validates and writes them. Any ``ValueError`` raised while building or validating (an
:class:`~toposcope.audio.AudioError`, :class:`~toposcope.corpus.CorpusError`,
:class:`~toposcope.phones.UnknownPhoneError` or :class:`ImporterError`) stops the import with that
message, or with ``skip_bad=True`` skips the utterance and records ``{"id", "source", "reason"}``
in the result and in ``OUT/skipped.jsonl``. Nothing is ever silently relabelled.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .._util import atomic_dir, progress_enabled, write_text_atomic
from ..audio import SAMPLE_RATE, AudioError, _wav_truncation, read_raw, resample, write_wav
from ..corpus import MANIFEST, SPLITS, CorpusError, Utterance, write_manifest
from ..phones import PHONE_SET, SILENCE, UnknownPhoneError, map_phone
from ..text import normalize_text
from ..validation import check_fraction, iter_manifest, parse_json

__all__ = [
    "ImporterError", "read_text_file", "Candidate", "Skipped", "ImportResult", "SKIPPED", "load_audio",
    "fold_segments", "read_label_map", "check_transcript", "speaker_hash", "assign_splits",
    "run_import", "show_progress", "print_import_result", "CheckResult", "check_corpus",
    "find_sibling",
]

SKIPPED = "skipped.jsonl"
#: Labels meaning "no speech" in aligner output (docs/method.md § Data and phones): empty, MFA's sp/spn, sil, <eps>.
SILENCE_LABELS = frozenset({"", "sp", "spn", "sil", "<eps>", "<sil>", "pau", "h#", "#"})


class ImporterError(ValueError):
    """A source file that cannot be imported as it is (the message names the file and the problem)."""


show_progress = progress_enabled


# ----------------------------------------------------------------------------------------- audio
def load_audio(path, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Read WAV/FLAC/... or NIST SPHERE audio, mono only, resampled to ``sample_rate``.

    Returns ``(wave, original_rate)``. Multi-channel audio, empty or truncated files are an
    :class:`~toposcope.audio.AudioError` naming the file.
    """
    from .sphere import is_sphere, read_sphere

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: audio file not found")
    if is_sphere(path):
        wave, sr = read_sphere(path)
        if wave.shape[0] == 0:
            raise AudioError(f"{path}: audio file holds no samples")
    else:
        wave, sr = read_raw(path)
    if wave.shape[1] != 1:
        raise AudioError(f"{path}: expected mono audio, got {wave.shape[1]} channels "
                         f"(convert it to one channel first)")
    mono = np.ascontiguousarray(wave[:, 0], dtype=np.float32)
    if sr != sample_rate:
        mono = resample(mono, sr, sample_rate)
    return mono, int(sr)


def find_sibling(path: Path, suffixes: Sequence[str]) -> Path | None:
    """The file next to ``path`` with the same stem and one of ``suffixes`` (any letter case)."""
    want = {s.lower() for s in suffixes}
    for cand in sorted(path.parent.iterdir()):
        if cand.is_file() and cand.stem == path.stem and cand.suffix.lower() in want:
            return cand
    return None


# ---------------------------------------------------------------------------------------- labels
def read_label_map(path) -> dict[str, str]:
    """A label map ``source -> canonical`` from a JSON object or a TSV (``source<TAB>canonical``,
    ``#`` comments). Every target must be a canonical phone (docs/method.md § Data and phones) or empty/``drop``
    (meaning: merge into the neighbour, like TIMIT ``q``)."""
    path = Path(path)
    if not path.exists():
        raise ImporterError(f"{path}: label map not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ImporterError(f"{path}: unreadable label map ({e})") from None
    pairs: list[tuple[str, str, str]] = []
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        obj = parse_json(text, f"{path}: label map", ImporterError)
        if not isinstance(obj, dict):
            raise ImporterError(f"{path}: a JSON label map must be an object {{source: canonical}}")
        for k, v in obj.items():
            pairs.append((str(k), "" if v is None else str(v), f"{path} (key {k!r})"))
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.rstrip("\n").split("\t") if "\t" in line else line.split()
            if len(parts) != 2:
                raise ImporterError(f"{path}:{n}: expected 'source<TAB>canonical', got {line!r}")
            pairs.append((parts[0].strip(), parts[1].strip(), f"{path}:{n}"))
    out: dict[str, str] = {}
    for src, dst, where in pairs:
        dst_l = dst.strip().lower()
        if dst_l in ("", "drop", "none"):
            out[src] = None  # type: ignore[assignment]
            continue
        if dst_l not in PHONE_SET:
            raise ImporterError(f"{where}: target {dst!r} is not a canonical phone "
                                f"(allowed: {' '.join(sorted(PHONE_SET))}, or 'drop')")
        out[src] = dst_l
    return out


def _map_one(label: str, mapping: dict | None, where: str, silence: frozenset[str]) -> str | None:
    if mapping:
        for key in (label, label.strip()):
            if key in mapping:
                return mapping[key]
    lab = label.strip()
    if lab.lower() in silence:
        return SILENCE
    try:
        return map_phone(lab, mapping)
    except UnknownPhoneError:
        raise UnknownPhoneError(f"{where}: unknown phone label {label!r} (not one of the 39 ARPAbet "
                                f"phones + sil, nor in the label map; pass --map FILE to map it)") from None


def fold_segments(segments: Sequence[tuple[float, float, str]], mapping: dict | None, where: str,
                  *, silence: frozenset[str] = SILENCE_LABELS) -> tuple[list, list]:
    """Map source segments onto canonical labels (docs/method.md § Data and phones).

    Returns ``(phones, source_phones)``. A label the mapping sends to ``None`` (TIMIT ``q``) is
    merged into its neighbour: the following segment when it starts where this one ends, else the
    preceding one when it ends where this one starts, else it becomes ``sil``. Labels in
    ``silence`` (empty, ``sp``, ``spn``, ...) become ``sil``. An unmapped label is an
    :class:`~toposcope.phones.UnknownPhoneError` naming ``where``.
    """
    source = [(float(s), float(e), str(lab)) for s, e, lab in segments]
    mapped = [_map_one(lab, mapping, where, silence) for _, _, lab in source]
    out: list[list] = []
    pending: list | None = None  # a dropped segment waiting to be merged into the next one
    for (s, e, _), lab in zip(source, mapped):
        if lab is None:
            if pending is not None:  # two dropped in a row: extend the pending one
                pending[1] = e
            else:
                pending = [s, e]
            continue
        if pending is not None:
            if abs(pending[1] - s) <= 1e-9:
                s = pending[0]
            elif out and abs(out[-1][1] - pending[0]) <= 1e-9:
                out[-1][1] = pending[1]
            else:
                out.append([pending[0], pending[1], SILENCE])
            pending = None
        out.append([s, e, lab])
    if pending is not None:
        if out and abs(out[-1][1] - pending[0]) <= 1e-9:
            out[-1][1] = pending[1]
        else:
            out.append([pending[0], pending[1], SILENCE])
    return [tuple(x) for x in out], source


def read_text_file(path: Path) -> str:
    """A transcript file's text; unreadable or non-UTF-8 files are an :class:`ImporterError` naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ImporterError(f"{path}: unreadable transcript ({e})") from None


def check_transcript(text: str, where: str) -> str:
    """The transcript stripped of surrounding space; empty (nothing left after normalisation) is an error."""
    text = " ".join(str(text).split())
    if not normalize_text(text):
        raise ImporterError(f"{where}: empty transcript (no letters after normalisation)")
    return text


# ---------------------------------------------------------------------------------------- splits
def speaker_hash(name: str) -> float:
    """A deterministic number in [0, 1) per name (md5; independent of Python's hash seed)."""
    return int(hashlib.md5(name.encode("utf-8")).hexdigest()[:12], 16) / float(16 ** 12)


def assign_splits(keys: Iterable[str], fractions: dict[str, float]) -> dict[str, str]:
    """Deterministically assign each distinct key (speaker) to a split.

    Keys are ordered by :func:`speaker_hash`; each split in ``fractions`` other than ``train`` gets
    ``round(n * fraction)`` keys, at least one when there are enough keys to leave one for train.
    """
    for split, frac in fractions.items():
        check_fraction(frac, f"the {split} fraction", ImporterError)
    if sum(fractions.values()) >= 1:
        raise ImporterError(f"the split fractions ({', '.join(f'{k} {v:g}' for k, v in fractions.items())}) "
                            f"must add up to less than 1 (the rest is train)")
    keys = sorted(set(keys), key=lambda k: (speaker_hash(k), k))
    out: dict[str, str] = {}
    n, i = len(keys), 0
    for split, frac in fractions.items():
        if split == "train":
            continue
        if split not in SPLITS:
            raise ImporterError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        k = int(round(n * frac))
        if frac > 0 and k == 0 and n - i >= 2:
            k = 1
        k = min(k, max(0, n - i - 1))
        for key in keys[i:i + k]:
            out[key] = split
        i += k
    for key in keys[i:]:
        out[key] = "train"
    return out


# ---------------------------------------------------------------------------------------- import
@dataclass
class Candidate:
    """One utterance to import: ``build()`` returns ``(wave at 16 kHz, Utterance)``; the
    Utterance's ``audio`` and ``duration`` are filled in by :func:`run_import`."""

    id: str
    source: str
    build: Callable[[], tuple[np.ndarray, Utterance]]


@dataclass
class Skipped:
    id: str
    source: str
    reason: str

    def to_dict(self) -> dict:
        return {"id": self.id, "source": self.source, "reason": self.reason}


@dataclass
class ImportResult:
    out: Path
    utterances: list[Utterance] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def run_import(out, candidates: Iterable[Candidate], *, skip_bad: bool = False, progress: bool = True,
               always_skip: tuple[type, ...] = (), desc: str = "import", force: bool = False) -> ImportResult:
    """Build, validate and write every candidate into the corpus directory ``out``, all or nothing.

    Writes ``out/audio/<id>.wav`` (16 kHz mono PCM16), ``out/manifest.jsonl`` and, when anything
    was skipped, ``out/skipped.jsonl``. Everything is built in a temporary folder beside ``out``
    that is renamed to ``out`` only when the import succeeds (:func:`toposcope._util.atomic_dir`):
    a failed import leaves no ``out`` (or the old one untouched). An existing non-empty ``out`` is
    refused unless ``force`` (then replaced at the end). Errors of the types in ``always_skip``
    (e.g. out-of-vocabulary words in ``align``) are skipped and reported even without ``skip_bad``.
    Raises :class:`ImporterError` when nothing could be imported.
    """
    out = Path(out)
    with atomic_dir(out, force=force, error=ImporterError) as tmp:
        result = _build_corpus(tmp, out, candidates, skip_bad=skip_bad, progress=progress,
                               always_skip=always_skip, desc=desc)
    return result


def _build_corpus(tmp: Path, out: Path, candidates, *, skip_bad, progress, always_skip, desc) -> ImportResult:
    cands = list(candidates)
    result = ImportResult(out)
    seen: dict[str, str] = {}
    from tqdm import tqdm

    for c in tqdm(cands, desc=desc, unit="utt", disable=not show_progress(progress)):
        try:
            if c.id in seen:
                raise ImporterError(f"{c.source}: utterance id {c.id!r} already used by {seen[c.id]}")
            wave, utt = c.build()
            utt.id = c.id
            utt.audio = f"audio/{c.id}.wav"
            utt.duration = len(wave) / SAMPLE_RATE
            utt.validate(c.source)
            Utterance.from_dict(utt.to_dict(), c.source).validate(c.source)  # what the manifest will hold
        except ValueError as e:
            if not (skip_bad or isinstance(e, always_skip)):
                raise
            result.skipped.append(Skipped(c.id, c.source, str(e)))
            continue
        seen[c.id] = c.source
        write_wav(tmp / utt.audio, wave)
        result.utterances.append(utt)
    if not result.utterances:
        first = "; ".join(f"{s.id}: {s.reason}" for s in result.skipped[:3])
        where = f"; {len(result.skipped)} skipped ({first}{'; ...' if len(result.skipped) > 3 else ''})" \
            if result.skipped else ""
        raise ImporterError(f"{out}: nothing imported{where}; {out} was not written")
    if result.skipped:
        write_text_atomic(tmp / SKIPPED, "".join(json.dumps(s.to_dict(), ensure_ascii=False) + "\n"
                                                 for s in result.skipped))
    write_manifest(tmp / MANIFEST, result.utterances)
    return result


def print_import_result(result: ImportResult, file=None) -> None:
    """One line per skipped file with its reason, then a summary line."""
    file = file or sys.stdout
    if result.skipped:
        print(f"skipped {len(result.skipped)} utterance(s):", file=file)
        for s in result.skipped:
            print(f"  {s.id}: {s.reason}", file=file)
    hours = sum(u.duration for u in result.utterances) / 3600
    splits = Counter(u.split or "train" for u in result.utterances)
    per = ", ".join(f"{k} {splits[k]}" for k in SPLITS if splits[k])
    print(f"wrote {len(result.utterances)} utterance(s), {hours:.3f} h ({per}) to {result.out}", file=file)


# ----------------------------------------------------------------------------------------- check
@dataclass
class CheckResult:
    """Outcome of :func:`check_corpus`: ``summary`` (as ``Corpus.summary()``) and ``problems``."""

    summary: dict
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_corpus(root, *, read_samples: bool = True, duration_tolerance: float = 0.01,
                 progress: bool = True) -> CheckResult:
    """Validate a corpus directory (docs/method.md § Data and phones): every manifest line (the parser of ``Corpus.load``,
    :func:`toposcope.validation.iter_manifest`), then every audio file (exists, readable, a header
    that can be true, 16 kHz mono, not truncated, duration within ``duration_tolerance`` s of the
    manifest). All problems are collected, not just the first."""
    import soundfile as sf
    from tqdm import tqdm

    from ..audio import audio_info

    from ..corpus import Corpus

    root = Path(root)
    problems: list[str] = []
    utts: list[Utterance] = []
    manifest = root / MANIFEST
    if not root.is_dir():
        problems.append(f"{root}: corpus directory not found")
    else:
        try:
            for _, u in iter_manifest(manifest, root):
                if isinstance(u, CorpusError):
                    problems.append(str(u))
                else:
                    utts.append(u)
        except CorpusError as e:  # no manifest, a folder in its place, unreadable
            problems.append(str(e))
        if not utts and not problems:
            problems.append(f"{manifest}: the corpus is empty (no utterances)")
    for u in tqdm(utts, desc="check", unit="utt", disable=not show_progress(progress)):
        path = root / u.audio
        where = f"{path} (utterance {u.id!r})"
        if not path.is_file():
            problems.append(f"{where}: audio file not found")
            continue
        try:
            info = audio_info(path)
        except AudioError as e:
            problems.append(f"{where}: {str(e).removeprefix(f'{path}: ')}")
            continue
        if info.samplerate != SAMPLE_RATE:
            problems.append(f"{where}: expected {SAMPLE_RATE} Hz audio, got {info.samplerate} Hz")
        if info.channels != 1:
            problems.append(f"{where}: expected mono audio, got {info.channels} channels")
        frames = info.frames
        truncated = _wav_truncation(path)
        if truncated:
            problems.append(f"{where}: {truncated}")
            continue
        if read_samples:
            try:
                data, _ = sf.read(str(path), dtype="float32", always_2d=True)
            except Exception as e:
                problems.append(f"{where}: unreadable audio ({e})")
                continue
            if data.shape[0] < frames:
                problems.append(f"{where}: truncated audio ({data.shape[0]} of {frames} frames readable)")
            frames = min(frames, data.shape[0])
        if frames == 0:
            problems.append(f"{where}: audio file holds no samples")
            continue
        dur = frames / info.samplerate
        if abs(dur - u.duration) > duration_tolerance:
            problems.append(f"{where}: audio lasts {dur:.3f} s but the manifest says {u.duration:.3f} s")
    if utts:
        summary = Corpus(root, utts).summary()
    else:
        summary = {"root": str(root), "utterances": 0, "speakers": [], "hours": 0.0,
                   "splits": {s: {"utterances": 0, "hours": 0.0, "speakers": []} for s in SPLITS},
                   "phone_counts": {}}
    summary["problems"] = len(problems)
    return CheckResult(summary, problems)
