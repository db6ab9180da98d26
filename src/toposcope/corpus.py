"""The native corpus format: ``<dir>/manifest.jsonl`` + ``<dir>/audio/...`` (docs/method.md § Data and phones).

Every problem is reported as a :class:`CorpusError` that names the file (and the utterance) and
says what is wrong; nothing is silently relabelled.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .phones import PHONE_SET
from .validation import check_relative_path, finite_time, is_number, iter_manifest

__all__ = [
    "CorpusError", "Segment", "Utterance", "Corpus", "validate_segments", "read_manifest",
    "write_manifest", "MANIFEST", "SPLITS", "TIME_TOLERANCE",
]

MANIFEST = "manifest.jsonl"
SPLITS = ("train", "valid", "test")
#: Segments may end this far past ``duration`` (rounding of times written with ms precision).
TIME_TOLERANCE = 0.002
#: Times are written to manifests rounded to this many decimals (1 µs).
TIME_DECIMALS = 6
_KNOWN = {"id", "audio", "speaker", "text", "duration", "phones", "words", "split", "source_phones"}

Segment = tuple[float, float, str]


class CorpusError(ValueError):
    """A corpus, manifest line, or utterance that cannot be used as it is."""


def validate_segments(segments: Sequence[Segment], duration: float, where: str, *,
                      labels: frozenset[str] | None = PHONE_SET, kind: str = "phones") -> None:
    """Check ``[start, end, label]`` segments: finite numbers, sorted, non-overlapping, inside
    ``[0, duration]`` (starts never below 0; ends up to ``TIME_TOLERANCE`` past ``duration``),
    positive length, known labels (``labels=None`` skips the label check)."""
    prev_end = 0.0
    for k, seg in enumerate(segments):
        if len(seg) != 3:
            raise CorpusError(f"{where}: {kind}[{k}] must be [start_s, end_s, label], got {seg!r}")
        s, e, lab = seg
        if not isinstance(lab, str) or not lab:
            raise CorpusError(f"{where}: {kind}[{k}] has an empty or non-string label {lab!r}")
        if labels is not None and lab not in labels:
            raise CorpusError(f"{where}: {kind}[{k}] has unknown label {lab!r}")
        if not (type(s) is float and type(e) is float and s - s == 0.0 and e - e == 0.0):  # else: the slow checks
            if not (is_number(s) and is_number(e)):
                raise CorpusError(f"{where}: {kind}[{k}] times must be numbers, got {s!r}, {e!r}")
            s = finite_time(s, where, f"{kind}[{k}] {lab!r} start", CorpusError)
            e = finite_time(e, where, f"{kind}[{k}] {lab!r} end", CorpusError)
        if s < 0 or e > duration + TIME_TOLERANCE:
            raise CorpusError(
                f"{where}: {kind}[{k}] {lab!r} [{s:.3f}, {e:.3f}] s lies outside the audio [0, {duration:.3f}] s")
        if e <= s:
            raise CorpusError(f"{where}: {kind}[{k}] {lab!r} has end {e:.3f} <= start {s:.3f}")
        if e - s < 2e-6 and round(e, TIME_DECIMALS) <= round(s, TIME_DECIMALS):  # empty once written (1 µs)
            raise CorpusError(f"{where}: {kind}[{k}] {lab!r} [{s!r}, {e!r}] s is shorter than the manifest's "
                              f"time resolution (1e-{TIME_DECIMALS} s)")
        if s < prev_end - TIME_TOLERANCE:
            raise CorpusError(
                f"{where}: {kind}[{k}] {lab!r} starts at {s:.3f} s before the previous segment ends "
                f"({prev_end:.3f} s): segments overlap or are unsorted")
        prev_end = e


@dataclass
class Utterance:
    """One manifest line. ``phones`` are ``(start_s, end_s, label)`` with canonical labels."""

    id: str
    audio: str
    speaker: str
    text: str
    duration: float
    phones: list[Segment]
    words: list[Segment] | None = None
    split: str | None = None
    source_phones: list[Segment] | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict, where: str = "manifest") -> "Utterance":
        if not isinstance(d, dict):
            raise CorpusError(f"{where}: expected a JSON object, got {type(d).__name__}")
        missing = [k for k in ("id", "audio", "speaker", "text", "duration", "phones") if k not in d]
        if missing:
            raise CorpusError(f"{where}: missing field(s) {', '.join(missing)}")
        for k in ("id", "speaker"):  # numbers are accepted as names (converted to str)
            if not (isinstance(d[k], str) or (is_number(d[k]) and isinstance(d[k], int))):
                raise CorpusError(f"{where}: malformed field ({k} must be a string, got {type(d[k]).__name__})")
        for k in ("audio", "text"):
            if not isinstance(d[k], str):
                raise CorpusError(f"{where}: malformed field ({k} must be a string, got {type(d[k]).__name__})")
        if d.get("split") is not None and not isinstance(d["split"], str):
            raise CorpusError(f"{where}: malformed field (split must be a string, got {type(d['split']).__name__})")
        if not is_number(d["duration"]):
            raise CorpusError(f"{where}: malformed field (duration must be a number, got {d['duration']!r:.40})")
        return cls(
            id=str(d["id"]), audio=d["audio"], speaker=str(d["speaker"]), text=d["text"],
            duration=finite_time(d["duration"], where, "duration", CorpusError),
            phones=_segments(d["phones"], where, "phones"), words=_segments(d.get("words"), where, "words"),
            split=d.get("split"), source_phones=_segments(d.get("source_phones"), where, "source_phones"),
            extra={k: v for k, v in d.items() if k not in _KNOWN},
        )

    def to_dict(self) -> dict:
        d = {"id": self.id, "audio": self.audio, "speaker": self.speaker, "text": self.text,
             "duration": round(float(self.duration), 6),
             "phones": [[round(s, 6), round(e, 6), lab] for s, e, lab in self.phones]}
        if self.words is not None:
            d["words"] = [[round(s, 6), round(e, 6), w] for s, e, w in self.words]
        if self.split is not None:
            d["split"] = self.split
        if self.source_phones is not None:
            d["source_phones"] = [[round(s, 6), round(e, 6), lab] for s, e, lab in self.source_phones]
        d.update(self.extra)
        return d

    def validate(self, where: str = "manifest") -> None:
        where = f"{where} (utterance {self.id!r})"
        if not self.id:
            raise CorpusError(f"{where}: empty id")
        if not self.text.strip():
            raise CorpusError(f"{where}: empty transcript")
        duration = finite_time(self.duration, where, "duration", CorpusError)
        if not (duration > 0):
            raise CorpusError(f"{where}: duration must be > 0, got {self.duration}")
        check_relative_path(self.audio, where, CorpusError)
        if not self.phones:
            raise CorpusError(f"{where}: no phone segments")
        if self.split is not None and self.split not in SPLITS:
            raise CorpusError(f"{where}: split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        validate_segments(self.phones, self.duration, where)
        if self.words is not None:
            validate_segments(self.words, self.duration, where, labels=None, kind="words")


def _segments(xs, where: str, kind: str) -> list[Segment] | None:
    """A manifest's ``[[start, end, label], ...]`` as tuples (``None`` stays ``None``); wrong shapes
    and types are a :class:`CorpusError` (values are checked by :func:`validate_segments`)."""
    if xs is None:
        return None
    if not isinstance(xs, (list, tuple)):
        raise CorpusError(f"{where}: malformed field ({kind} must be a list of [start_s, end_s, label], "
                          f"got {type(xs).__name__})")
    out = []
    for k, seg in enumerate(xs):
        if not isinstance(seg, (list, tuple)) or len(seg) != 3:
            raise CorpusError(f"{where}: malformed field ({kind}[{k}] must be [start_s, end_s, label], "
                              f"got {seg!r:.60})")
        s, e, lab = seg
        if type(s) is float and type(e) is float and s - s == 0.0 and e - e == 0.0 and type(lab) is str:
            out.append((s, e, lab))  # fast path: finite floats and a label
            continue
        if not (is_number(s) and is_number(e)) or not isinstance(lab, str):
            raise CorpusError(f"{where}: malformed field ({kind}[{k}] must be [number, number, string], "
                              f"got {seg!r:.60})")
        out.append((finite_time(s, where, f"{kind}[{k}] start", CorpusError),
                    finite_time(e, where, f"{kind}[{k}] end", CorpusError), lab))
    return out


def read_manifest(path, root=None, *, alignments: bool = True) -> list[Utterance]:
    """Parse and validate a manifest file (:func:`toposcope.validation.iter_manifest`, the parser
    ``toposcope check`` uses too); the first bad line raises its :class:`CorpusError`.
    ``alignments=False``: validated, but phones/words are not kept (metadata only)."""
    utts = []
    for _, u in iter_manifest(path, root, alignments=alignments):
        if isinstance(u, CorpusError):
            raise u
        utts.append(u)
    return utts


def write_manifest(path, utterances: Iterable[Utterance]) -> None:
    """Write a manifest atomically, one JSON object per line."""
    from ._util import atomic_write

    def write(f):
        for u in utterances:
            f.write(json.dumps(u.to_dict(), ensure_ascii=False) + "\n")

    atomic_write(path, write, mode="w")


class Corpus(Sequence[Utterance]):
    """A corpus directory: its validated manifest and paths to its audio."""

    def __init__(self, root, utterances: list[Utterance], *, alignments: bool = True):
        self.root = Path(root)
        self.utterances = utterances
        self.alignments = alignments  # False: loaded as metadata only (no phones/words)

    @classmethod
    def load(cls, root, *, alignments: bool = True) -> "Corpus":
        """Read and validate ``root/manifest.jsonl``. ``alignments=False`` validates everything but keeps
        no phone/word alignments (what training and evaluation load: memory per utterance then stays
        ~1 KB instead of ~15 KB for a 12-second utterance, see docs/benchmarks/data.md)."""
        root = Path(root)
        if not root.is_dir():
            raise CorpusError(f"{root}: corpus directory not found")
        utts = read_manifest(root / MANIFEST, alignments=alignments)
        if not utts:
            raise CorpusError(f"{root / MANIFEST}: the corpus is empty (no utterances)")
        return cls(root, utts, alignments=alignments)

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i):
        return self.utterances[i]

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    def audio_path(self, utt: Utterance) -> Path:
        return self.root / utt.audio

    def split(self, name: str) -> list[Utterance]:
        """Utterances of one split (utterances without a split count as ``train``)."""
        if name not in SPLITS:
            raise CorpusError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return [u for u in self.utterances if (u.split or "train") == name]

    def summary(self) -> dict:
        """Counts for ``toposcope check`` and the report."""
        phones = Counter(lab for u in self for _, _, lab in u.phones)
        splits = {}
        for s in SPLITS:
            us = self.split(s)
            splits[s] = {"utterances": len(us), "hours": sum(u.duration for u in us) / 3600,
                         "speakers": sorted({u.speaker for u in us})}
        return {
            "root": str(self.root), "utterances": len(self), "speakers": sorted({u.speaker for u in self}),
            "hours": sum(u.duration for u in self) / 3600, "splits": splits, "phone_counts": dict(phones),
        }
