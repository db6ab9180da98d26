"""Praat TextGrid importer (docs/method.md § Data and phones): ``toposcope import textgrid DIR --out OUT [--tier NAME] [--map FILE]``.

Pairs ``X.wav`` (any rate: resampled to 16 kHz) with ``X.TextGrid`` (e.g. Montreal Forced Aligner
output) anywhere below DIR. The phone tier is ``--tier NAME`` or the first tier named
``phones``/``phone``/``phonemes``/``segments`` (any case). Labels: ARPAbet with or without stress
(``AH0``), or anything a ``--map`` file (TSV or JSON ``source -> canonical``, e.g. IPA/SAMPA) maps;
empty intervals, ``sp``, ``spn``, ``sil`` become ``sil``. The words tier (``words``/``word``) gives
``text`` and ``words``; without one the transcript comes from a sidecar ``X.txt`` or ``X.lab``.
Speaker: the directory holding the pair (MFA's layout), relative to DIR; ``--speaker`` overrides.
"""

from __future__ import annotations

from pathlib import Path

from ..corpus import Utterance
from ..audio import SAMPLE_RATE
from ..validation import finite_time
from .common import (Candidate, ImporterError, ImportResult, read_text_file, assign_splits, check_transcript,
                     find_sibling, fold_segments, load_audio, read_label_map, run_import)

__all__ = ["import_textgrid", "textgrid_candidates", "read_textgrid_tiers", "PHONE_TIERS", "WORD_TIERS"]

PHONE_TIERS = ("phones", "phone", "phonemes", "segments")
WORD_TIERS = ("words", "word")
_WORD_SILENCE = frozenset({"", "sp", "spn", "sil", "<eps>", "<unk>"})
AUDIO_EXT = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".sph")


def read_textgrid_tiers(path: Path, tier: str | None):
    """``(phone_intervals, word_intervals or None, xmax)`` from a TextGrid, each ``(start, end, label)``."""
    from praatio import textgrid as tgio

    try:
        tg = tgio.openTextgrid(str(path), includeEmptyIntervals=True, reportingMode="silence")
    except Exception as e:  # praatio raises several types on malformed input
        raise ImporterError(f"{path}: unreadable TextGrid ({type(e).__name__}: {e})") from None
    names = list(tg.tierNames)
    lower = {n.lower(): n for n in names}
    if tier is not None:
        if tier not in names:
            raise ImporterError(f"{path}: no tier named {tier!r}; tiers: {', '.join(map(repr, names))}")
        ptier = tier
    else:
        ptier = next((lower[n] for n in PHONE_TIERS if n in lower), None)
        if ptier is None:
            raise ImporterError(f"{path}: no phone tier (looked for {', '.join(PHONE_TIERS)}); tiers: "
                                f"{', '.join(map(repr, names))}; choose one with --tier")
    t = tg.getTier(ptier)
    if not hasattr(t, "entries") or t.__class__.__name__ != "IntervalTier":
        raise ImporterError(f"{path}: tier {ptier!r} is not an interval tier")
    phones = _intervals(path, ptier, t.entries)
    words = None
    wname = next((lower[n] for n in WORD_TIERS if n in lower and lower[n] != ptier), None)
    if wname is not None and tg.getTier(wname).__class__.__name__ == "IntervalTier":
        words = [(s, e, lab.strip()) for s, e, lab in _intervals(path, wname, tg.getTier(wname).entries)
                 if lab.strip().lower() not in _WORD_SILENCE]
    return phones, words, finite_time(tg.maxTimestamp, str(path), "xmax", ImporterError)


def _intervals(path, tier: str, entries) -> list[tuple[float, float, str]]:
    """Interval tier entries as ``(start, end, label)``: finite times, ``0 <= start < end``."""
    out = []
    for k, e in enumerate(entries):
        where = f"{path} (tier {tier!r}, interval {k + 1})"
        s = finite_time(e.start, where, "start", ImporterError)
        t = finite_time(e.end, where, "end", ImporterError)
        if s < 0 or t <= s:
            raise ImporterError(f"{where}: times [{s:g}, {t:g}] s are not 0 <= start < end")
        out.append((s, t, str(e.label)))
    return out


def textgrid_candidates(src, *, tier: str | None = None, label_map=None, speaker: str | None = None,
                        valid_fraction: float = 0.1, test_fraction: float = 0.1) -> list[Candidate]:
    src = Path(src)
    if not src.is_dir():
        raise ImporterError(f"{src}: directory not found")
    mapping = read_label_map(label_map) if label_map is not None else None
    grids = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() == ".textgrid")
    audios = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXT)
    if not grids and not audios:
        raise ImporterError(f"{src}: no TextGrid or audio files found")
    units = []
    grid_stems = {g.with_suffix("") for g in grids}
    for g in grids:
        rel = g.parent.relative_to(src)
        spk = speaker or ("_".join(rel.parts) if rel.parts else src.resolve().name) or "unknown"
        uid = "_".join([*rel.parts, g.stem]) if rel.parts else g.stem
        units.append((uid, spk, g, find_sibling(g, AUDIO_EXT)))
    for a in audios:  # audio with no TextGrid: reported, never imported unlabelled
        if a.with_suffix("") not in grid_stems:
            rel = a.parent.relative_to(src)
            uid = "_".join([*rel.parts, a.stem]) if rel.parts else a.stem
            units.append((uid, speaker or "unknown", a, None))
    split_of = _splits([(u, s) for u, s, _, _ in units], valid_fraction, test_fraction)
    cands = []
    for uid, spk, path, audio in units:
        cands.append(Candidate(uid, str(path), _builder(uid, spk, split_of[uid], path, audio, tier, mapping)))
    return cands


def _splits(pairs, valid_fraction, test_fraction) -> dict[str, str]:
    """By speaker when there are at least 3 speakers, else by utterance id (both deterministic)."""
    speakers = {s for _, s in pairs}
    fr = {"valid": valid_fraction, "test": test_fraction}
    if len(speakers) >= 3:
        by = assign_splits(speakers, fr)
        return {u: by[s] for u, s in pairs}
    return assign_splits([u for u, _ in pairs], fr)


def _builder(uid, spk, split, path, audio, tier, mapping):
    def build():
        if path.suffix.lower() != ".textgrid":
            raise ImporterError(f"{path}: no TextGrid ({path.stem}.TextGrid is missing)")
        if audio is None:
            raise ImporterError(f"{path}: no audio ({path.stem}.wav is missing)")
        raw, words, _ = read_textgrid_tiers(path, tier)
        if words:
            text = check_transcript(" ".join(w for _, _, w in words), f"{path} (words tier)")
        else:
            side = find_sibling(path, (".txt", ".lab"))
            if side is None:
                raise ImporterError(f"{path}: no transcript (no words tier and no {path.stem}.txt/.lab)")
            text = check_transcript(read_text_file(side), str(side))
            words = None
        wave, _ = load_audio(audio)
        phones, source = fold_segments(raw, mapping, str(path))
        utt = Utterance(id=uid, audio="", speaker=spk, text=text, duration=len(wave) / SAMPLE_RATE,
                        phones=phones, words=words, split=split, source_phones=source,
                        extra={"source": str(audio)})
        return wave, utt

    return build


def import_textgrid(src, out, *, tier: str | None = None, label_map=None, speaker: str | None = None,
                    skip_bad: bool = False, valid_fraction: float = 0.1, test_fraction: float = 0.1,
                    progress: bool = True, force: bool = False) -> ImportResult:
    """Import wav + TextGrid pairs below ``src`` into the corpus directory ``out``."""
    cands = textgrid_candidates(src, tier=tier, label_map=label_map, speaker=speaker,
                                valid_fraction=valid_fraction, test_fraction=test_fraction)
    return run_import(out, cands, skip_bad=skip_bad, progress=progress, desc="import textgrid", force=force)
