"""LibriSpeech + Montreal Forced Aligner (SPEC §2.4): ``toposcope import librispeech ROOT --alignments DIR --out OUT``.

Audio: ``ROOT/<subset>/<speaker>/<chapter>/<spk>-<chap>-<utt>.flac`` (FLAC read directly), transcripts in
``<spk>-<chap>.trans.txt`` beside them (``<utt id> <TEXT>`` per line; the text is lower-cased). ROOT may
also be one subset folder. Alignments: MFA TextGrids named ``<spk>-<chap>-<utt>.TextGrid`` anywhere
below ``--alignments`` (MFA writes ``<speaker>/<chapter>/`` or ``<speaker>/``), tiers ``words`` and
``phones``. Phones are stress-marked ARPAbet (``AH0`` -> ``ah``); silence (empty, ``sil``, ``sp``,
``spn``) becomes ``sil``; the labels before mapping are kept in ``source_phones``.

Splits: when the subsets include ``dev-*`` or ``test-*`` folders, from the subset names (``dev-*`` ->
``valid``, ``test-*`` -> ``test``, others -> ``train``); otherwise speaker-disjoint fractions
(``valid_fraction``, ``test_fraction``). Utterances without a TextGrid (MFA skips what it cannot align)
are reported and skipped, with or without ``--skip-bad``.
"""

from __future__ import annotations

from pathlib import Path

from ..audio import SAMPLE_RATE
from ..corpus import Utterance
from .common import (Candidate, ImporterError, ImportResult, assign_splits, check_transcript, fold_segments,
                     load_audio, read_text_file, run_import)
from .textgrid import read_textgrid_tiers

__all__ = ["import_librispeech", "librispeech_candidates", "MissingAlignmentError", "read_transcripts",
           "split_of_subset"]


class MissingAlignmentError(ImporterError):
    """An utterance the aligner produced no TextGrid for (always skipped and reported)."""


def split_of_subset(name: str) -> str | None:
    """``dev-*`` -> ``valid``, ``test-*`` -> ``test``, ``train-*`` -> ``train``, else ``None``."""
    low = name.lower()
    if low.startswith("dev"):
        return "valid"
    if low.startswith("test"):
        return "test"
    if low.startswith("train"):
        return "train"
    return None


def read_transcripts(path: Path) -> dict[str, tuple[str, int]]:
    """``{utterance id: (text, line number)}`` of a ``<spk>-<chap>.trans.txt`` file."""
    out: dict[str, tuple[str, int]] = {}
    for n, line in enumerate(read_text_file(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            raise ImporterError(f"{path}:{n}: expected '<utterance id> <transcript>', got {line.strip()!r}")
        if parts[0] in out:
            raise ImporterError(f"{path}:{n}: utterance {parts[0]!r} listed twice (first on line {out[parts[0]][1]})")
        out[parts[0]] = (parts[1], n)
    return out


def librispeech_candidates(root, alignments, *, subsets=None, valid_fraction: float = 0.1,
                           test_fraction: float = 0.1) -> list[Candidate]:
    root, alignments = Path(root), Path(alignments)
    if not root.is_dir():
        raise ImporterError(f"{root}: LibriSpeech directory not found")
    if not alignments.is_dir():
        raise ImporterError(f"{alignments}: alignments directory not found")
    trans = sorted(root.rglob("*.trans.txt"))
    if not trans:
        raise ImporterError(f"{root}: no <spk>-<chap>.trans.txt files found (expected "
                            f"<subset>/<speaker>/<chapter>/<spk>-<chap>-<utt>.flac with transcripts beside them)")
    grids = {}
    for g in alignments.rglob("*"):
        if g.is_file() and g.suffix.lower() == ".textgrid":
            grids.setdefault(g.stem, g)
    units = []  # (id, speaker, subset, flac, text, where, grid)
    for t in trans:
        chapter_dir = t.parent
        speaker = chapter_dir.parent.name
        subset = chapter_dir.parent.parent.name  # ROOT/<subset>/..., or ROOT itself when it is one subset
        if subsets is not None and subset not in subsets:
            continue
        for uid, (text, n) in read_transcripts(t).items():
            flac = chapter_dir / f"{uid}.flac"
            units.append((uid, speaker, subset, flac, text, f"{t}:{n}", grids.get(uid)))
    if not units:
        raise ImporterError(f"{root}: no utterances found" + (f" in subsets {', '.join(subsets)}" if subsets else ""))
    named = {s: split_of_subset(s) for s in {u[2] for u in units}}
    by_name = any(v in ("valid", "test") for v in named.values())
    if by_name:
        split_of = {u[0]: named[u[2]] or "train" for u in units}
    else:
        by_spk = assign_splits({u[1] for u in units}, {"valid": valid_fraction, "test": test_fraction})
        split_of = {u[0]: by_spk[u[1]] for u in units}
    return [Candidate(uid, str(grid or flac), _builder(uid, spk, split_of[uid], flac, text, where, grid, alignments))
            for uid, spk, _, flac, text, where, grid in units]


def _builder(uid, spk, split, flac, text, where, grid, alignments):
    def build():
        if grid is None:
            raise MissingAlignmentError(f"{flac}: no TextGrid {uid}.TextGrid below {alignments} (not aligned)")
        if not flac.is_file():
            raise ImporterError(f"{where}: audio {flac} not found")
        txt = check_transcript(text.lower(), where)
        raw, words, _ = read_textgrid_tiers(grid, None)
        wave, _ = load_audio(flac)
        phones, source = fold_segments(raw, None, str(grid))
        utt = Utterance(id=uid, audio="", speaker=spk, text=txt, duration=len(wave) / SAMPLE_RATE, phones=phones,
                        words=words or None, split=split, source_phones=source, extra={"source": str(flac)})
        return wave, utt

    return build


def import_librispeech(root, out, *, alignments, subsets=None, skip_bad: bool = False, valid_fraction: float = 0.1,
                       test_fraction: float = 0.1, progress: bool = True, force: bool = False) -> ImportResult:
    """Import LibriSpeech audio + transcripts with MFA TextGrids into the corpus directory ``out``."""
    cands = librispeech_candidates(root, alignments, subsets=subsets, valid_fraction=valid_fraction,
                                   test_fraction=test_fraction)
    return run_import(out, cands, skip_bad=skip_bad, progress=progress, desc="import librispeech", force=force,
                      always_skip=(MissingAlignmentError,))
