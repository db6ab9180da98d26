"""Offline forced alignment of own audio + transcripts with pocketsphinx (docs/method.md § Data and phones):
``toposcope align --audio DIR --transcripts FILE --out OUT``.

Transcripts FILE: ``id<TAB>text`` lines (optional third column: speaker), or JSONL objects with
``id``, ``text`` and optionally ``speaker`` and ``audio`` (a path relative to DIR). The audio of
``id`` is ``DIR/<id>.wav`` (or ``.flac``/``.sph``/...; any rate, resampled to 16 kHz).

pocketsphinx (its bundled en-us acoustic model and CMU dictionary) aligns the normalised word
sequence at 100 frames/s; phones come back in ARPAbet (``SIL`` -> ``sil``). Words missing from the
dictionary are reported (:class:`OutOfVocabularyError`) and the utterance is skipped, never
aligned with a guessed pronunciation. A failed alignment is an :class:`AlignmentError`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..corpus import Utterance
from .common import (Candidate, ImporterError, ImportResult, assign_splits, check_transcript,
                               load_audio, run_import)
from ..phones import SILENCE, map_phone
from ..text import normalize_text
from ..validation import check_fraction, decode_lines, parse_json

__all__ = ["Aligner", "AlignmentError", "OutOfVocabularyError", "read_transcripts", "align_corpus",
           "FRAME_RATE"]

FRAME_RATE = 100  # pocketsphinx frames per second (default -frate)
_FILLER = {"<s>", "</s>", "<sil>", "[noise]", "<noise>"}


class AlignmentError(ImporterError):
    """The aligner found no path through the transcript for this audio."""


class OutOfVocabularyError(ImporterError):
    """A transcript word has no pronunciation in the dictionary."""


def read_transcripts(path) -> list[dict]:
    """``[{"id", "text", "speaker"?, "audio"?}, ...]`` from a TSV or JSONL transcript file."""
    path = Path(path)
    if not path.exists():
        raise ImporterError(f"{path}: transcript file not found")
    out, seen = [], {}
    jsonl = path.suffix.lower() in (".jsonl", ".json")
    for n, line in decode_lines(path, ImporterError):
        if isinstance(line, ValueError):
            raise line
        if not line.strip() or (not jsonl and line.lstrip().startswith("#")):
            continue
        where = f"{path}:{n}"
        if jsonl or line.lstrip().startswith("{"):
            d = parse_json(line, where, ImporterError)
            if not isinstance(d, dict) or "id" not in d or "text" not in d:
                raise ImporterError(f"{where}: a JSONL transcript line needs 'id' and 'text'")
            rec = {k: str(v) for k, v in d.items() if k in ("id", "text", "speaker", "audio")}
        else:
            parts = line.split("\t")
            if len(parts) < 2:
                raise ImporterError(f"{where}: expected 'id<TAB>text', got {line!r}")
            rec = {"id": parts[0].strip(), "text": parts[1]}
            if len(parts) > 2 and parts[2].strip():
                rec["speaker"] = parts[2].strip()
        if not rec["id"] or "/" in rec["id"] or "\\" in rec["id"]:
            raise ImporterError(f"{where}: bad utterance id {rec['id']!r} (non-empty, no slashes)")
        if rec["id"] in seen:
            raise ImporterError(f"{where}: duplicate id {rec['id']!r} (first on line {seen[rec['id']]})")
        seen[rec["id"]] = n
        rec["where"] = where
        out.append(rec)
    if not out:
        raise ImporterError(f"{path}: no transcripts")
    return out


class Aligner:
    """A pocketsphinx decoder in alignment mode (en-us model, CMU dictionary, 16 kHz)."""

    def __init__(self, dictionary: str | None = None):
        from pocketsphinx import Decoder

        # bestpath=False: the lattice best path can hand the phone aligner impossible 1-frame
        # phones (it then fails on audio with long leading silence); the Viterbi path cannot.
        kw = {"lm": None, "samprate": SAMPLE_RATE, "loglevel": "FATAL", "bestpath": False}
        if dictionary is not None:
            kw["dict"] = str(dictionary)
        self.decoder = Decoder(**kw)

    def pronunciation(self, word: str) -> list[str] | None:
        """Canonical phones of ``word`` (first dictionary entry), or None when out of vocabulary."""
        p = self.decoder.lookup_word(word)
        return None if p is None else [map_phone(x) for x in p.split()]

    def oov(self, words: list[str]) -> list[str]:
        return [w for w in dict.fromkeys(words) if self.decoder.lookup_word(w) is None]

    def align(self, wave: np.ndarray, text: str, where: str = "audio"):
        """``(phones, words)`` segments in seconds for a 16 kHz ``wave`` and a transcript.

        Raises :class:`OutOfVocabularyError` listing the unknown words, :class:`AlignmentError`
        when no alignment is found.
        """
        words = normalize_text(text).split()
        if not words:
            raise ImporterError(f"{where}: empty transcript (no letters after normalisation)")
        missing = self.oov(words)
        if missing:
            raise OutOfVocabularyError(f"{where}: out-of-vocabulary word(s) {', '.join(map(repr, missing))} "
                                       f"(not in the pocketsphinx dictionary); utterance skipped")
        pcm = (np.clip(wave, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        d = self.decoder
        try:
            d.set_align_text(" ".join(words))
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            if d.hyp() is None:
                raise AlignmentError(f"{where}: pocketsphinx found no alignment of the transcript "
                                     f"({len(words)} words) to {len(wave) / SAMPLE_RATE:.2f} s of audio")
            d.set_alignment()
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            al = d.get_alignment()
        except RuntimeError as e:
            raise AlignmentError(f"{where}: pocketsphinx alignment failed ({e})") from None
        if al is None:
            raise AlignmentError(f"{where}: pocketsphinx returned no phone alignment")
        dur = len(wave) / SAMPLE_RATE
        phones, wsegs = [], []
        for w in al:
            name = re.sub(r"\(\d+\)$", "", w.name)
            ws, we = w.start / FRAME_RATE, min((w.start + w.duration) / FRAME_RATE, dur)
            if name.lower() not in _FILLER and we > ws:
                wsegs.append((ws, we, name))
            for p in w:
                s, e = p.start / FRAME_RATE, min((p.start + p.duration) / FRAME_RATE, dur)
                if e <= s:
                    continue
                lab = SILENCE if p.name.upper() == "SIL" or p.name.startswith("+") else map_phone(p.name)
                if phones and phones[-1][2] == SILENCE and lab == SILENCE and abs(phones[-1][1] - s) < 1e-9:
                    phones[-1] = (phones[-1][0], e, SILENCE)  # <s> SIL + <sil> SIL -> one silence
                else:
                    phones.append((s, e, lab))
        if not phones or all(lab == SILENCE for _, _, lab in phones):
            raise AlignmentError(f"{where}: pocketsphinx aligned no speech phones")
        return phones, wsegs


_AUDIO_EXT = (".wav", ".flac", ".ogg", ".sph", ".aiff", ".aif")


def _find_audio(audio_dir: Path, rec: dict) -> Path | None:
    if "audio" in rec:
        p = audio_dir / rec["audio"]
        return p if p.exists() else None
    for ext in _AUDIO_EXT:
        for e in (ext, ext.upper()):
            p = audio_dir / f"{rec['id']}{e}"
            if p.exists():
                return p
    return None


def align_corpus(audio_dir, transcripts, out, *, speaker: str | None = None, skip_bad: bool = False,
                 valid_fraction: float = 0.1, test_fraction: float = 0.1, dictionary: str | None = None,
                 progress: bool = True, force: bool = False) -> ImportResult:
    """Align every transcript with its audio and write the corpus directory ``out``.

    Out-of-vocabulary utterances are always skipped and listed (``OUT/skipped.jsonl``); other bad
    input stops the run unless ``skip_bad``. Splits: by speaker when there are at least 3
    speakers, else by utterance id (deterministic hashes).
    """
    audio_dir = Path(audio_dir)
    check_fraction(valid_fraction, "the valid fraction", ImporterError)
    check_fraction(test_fraction, "the test fraction", ImporterError)
    if not audio_dir.is_dir():
        raise ImporterError(f"{audio_dir}: audio directory not found")
    recs = read_transcripts(transcripts)
    aligner = Aligner(dictionary)
    for r in recs:
        r["speaker"] = r.get("speaker") or speaker or audio_dir.resolve().name or "unknown"
    speakers = {r["speaker"] for r in recs}
    fr = {"valid": valid_fraction, "test": test_fraction}
    if len(speakers) >= 3:
        by = assign_splits(speakers, fr)
        split_of = {r["id"]: by[r["speaker"]] for r in recs}
    else:
        split_of = assign_splits([r["id"] for r in recs], fr)

    def builder(rec):
        def build():
            path = _find_audio(audio_dir, rec)
            if path is None:
                raise ImporterError(f"{rec['where']}: no audio for {rec['id']!r} in {audio_dir} "
                                    f"(looked for {rec.get('audio') or rec['id'] + '.wav'})")
            text = check_transcript(rec["text"], rec["where"])
            wave, _ = load_audio(path)
            phones, words = aligner.align(wave, text, str(path))
            utt = Utterance(id=rec["id"], audio="", speaker=rec["speaker"], text=text,
                            duration=len(wave) / SAMPLE_RATE, phones=phones, words=words,
                            split=split_of[rec["id"]], extra={"source": str(path), "aligner": "pocketsphinx"})
            return wave, utt
        return build

    cands = [Candidate(r["id"], r["where"], builder(r)) for r in recs]
    return run_import(out, cands, skip_bad=skip_bad, progress=progress, always_skip=(OutOfVocabularyError,),
                      desc="align", force=force)
