"""TIMIT importer (docs/method.md § Data and phones, §2.4): ``toposcope import timit DIR --out OUT``.

Two layouts are recognised, per file:

* LDC: ``TRAIN/DR1/FCJF0/SA1.WAV|.PHN|.WRD|.TXT`` (any letter case). The split comes from the
  ``TRAIN``/``TEST`` directory; ``valid`` is carved out of the training speakers
  (deterministically, by an md5 hash of the speaker name).
* NLTK sample (flat): ``dr1-fvmh0/sa1.wav|.phn|.wrd|.txt``. Splits by speaker hash.

Audio is NIST SPHERE (read by :mod:`toposcope.importers.sphere`) or any format soundfile reads;
``.phn``/``.wrd`` are sample-indexed ``start end label`` lines at the audio's own rate. The 61
TIMIT labels are folded onto the 39 + ``sil`` with :data:`toposcope.phones.TIMIT_MAP` (``q`` merged
into its neighbour, see :func:`~toposcope.importers.common.fold_segments`); the original labels
are kept in ``source_phones``. Ids are ``<speaker>_<utterance>`` in lower case (``fcjf0_sa1``).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..corpus import Utterance
from ..phones import TIMIT_MAP
from ..audio import SAMPLE_RATE
from ..validation import check_fraction
from .common import (Candidate, ImporterError, ImportResult, read_text_file, assign_splits, check_transcript,
                     fold_segments, load_audio, run_import)

__all__ = ["import_timit", "timit_candidates", "read_sample_segments", "read_timit_text"]

#: TIMIT's own silence-ish labels are mapped by TIMIT_MAP; only these count as silence here.
_TIMIT_SILENCE = frozenset({"h#", "pau", "epi"})
_EXTS = (".phn", ".wav", ".wrd", ".txt", ".sph")
_SAMPLE = re.compile(r"[0-9]{1,15}")


def read_sample_segments(path: Path, rate: int) -> list[tuple[float, float, str]]:
    """``start_sample end_sample label`` lines -> ``(start_s, end_s, label)``."""
    segs = []
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ImporterError(f"{path}: unreadable label file ({e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ImporterError(f"{path}:{n}: expected 'start_sample end_sample label', got {line!r}")
        if not (_SAMPLE.fullmatch(parts[0]) and _SAMPLE.fullmatch(parts[1])):
            raise ImporterError(f"{path}:{n}: sample indices must be integers >= 0 (at most 15 digits), "
                                f"got {line!r:.80}")
        s, e = int(parts[0]), int(parts[1])
        if e <= s:
            raise ImporterError(f"{path}:{n}: end sample {e} is not after start sample {s}")
        segs.append((s / rate, e / rate, parts[2]))
    if not segs:
        raise ImporterError(f"{path}: no segments")
    return segs


def read_timit_text(path: Path) -> str:
    """A TIMIT ``.txt`` (``start end sentence``) -> the sentence."""
    raw = read_text_file(path)
    parts = raw.split(None, 2)
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        raw = parts[2] if len(parts) == 3 else ""
    return check_transcript(raw, str(path))


def _fix_word_overlaps(words, where):
    """TIMIT ``.wrd`` files sometimes let adjacent words share samples; start the later word where
    the earlier one ends (words are not used as labels). Unsorted words remain an error."""
    out = []
    for s, e, w in words:
        if out and s < out[-1][1]:
            if s < out[-1][0]:
                raise ImporterError(f"{where}: word {w!r} at {s:.3f} s starts before the previous word "
                                    f"{out[-1][2]!r} ({out[-1][0]:.3f} s): words are unsorted")
            s = out[-1][1]
            if e <= s:
                raise ImporterError(f"{where}: word {w!r} lies inside the previous word {out[-1][2]!r}")
        out.append((s, e, w))
    return out


def _layout(rel: Path) -> tuple[str, str | None]:
    """``(speaker, split or None)`` from a path relative to the import root."""
    parts = [p.lower() for p in rel.parts[:-1]]
    split = next((p for p in parts if p in ("train", "test")), None)
    spk_dir = parts[-1] if parts else ""
    if split is None and "-" in spk_dir:  # NLTK: dr1-fvmh0
        spk_dir = spk_dir.split("-", 1)[1]
    return spk_dir, split


def timit_candidates(src, *, valid_fraction: float = 0.1, test_fraction: float = 0.1) -> list[Candidate]:
    """One :class:`Candidate` per utterance (a ``.phn`` file, or an audio file lacking one)."""
    src = Path(src)
    check_fraction(valid_fraction, "the valid fraction", ImporterError)
    check_fraction(test_fraction, "the test fraction", ImporterError)
    if not src.is_dir():
        raise ImporterError(f"{src}: TIMIT directory not found")
    files = sorted(p for p in src.rglob("*") if p.is_file())
    stems: dict[Path, dict[str, Path]] = {}
    for p in files:
        ext = p.suffix.lower()
        if ext not in _EXTS:
            continue
        stem = p.with_suffix("")
        if ext == ".wav" and stem.suffix.lower() in (".wav", ".sph"):
            # Some distributions ship SA1.WAV (SPHERE) plus a converted SA1.WAV.wav: one utterance;
            # the first in sorted order (the original) is used.
            stem = stem.with_suffix("")
        stems.setdefault(stem, {}).setdefault(ext, p)
    units = []
    for stem, group in sorted(stems.items()):
        if ".phn" not in group and ".wav" not in group and ".sph" not in group:
            continue
        rel = stem.relative_to(src)
        speaker, split = _layout(rel)
        if not speaker:
            speaker = "unknown"
        uid = f"{speaker}_{stem.name.lower()}"
        units.append((uid, speaker, split, group, stem))
    if not units:
        raise ImporterError(f"{src}: no TIMIT files (*.phn + *.wav) found")
    ldc = any(split is not None for _, _, split, _, _ in units)
    if ldc:
        train_spk = [spk for _, spk, split, _, _ in units if split == "train"]
        carve = assign_splits(train_spk, {"valid": valid_fraction})
        split_of = lambda spk, split: carve.get(spk, "train") if split == "train" else (split or "train")  # noqa: E731
    else:
        by_spk = assign_splits([spk for _, spk, _, _, _ in units], {"valid": valid_fraction, "test": test_fraction})
        split_of = lambda spk, split: by_spk[spk]  # noqa: E731

    cands = []
    for uid, speaker, split, group, stem in units:
        the_split = split_of(speaker, split)
        source = str(group.get(".phn") or group.get(".wav") or group.get(".sph"))
        cands.append(Candidate(uid, source, _builder(uid, speaker, the_split, group, stem)))
    return cands


def _builder(uid, speaker, split, group, stem):
    def build():
        phn = group.get(".phn")
        audio = group.get(".wav") or group.get(".sph")
        if phn is None:
            raise ImporterError(f"{audio}: no phone labels ({stem.name}.phn is missing)")
        if audio is None:
            raise ImporterError(f"{phn}: no audio ({stem.name}.wav is missing)")
        txt = group.get(".txt")
        if txt is None:
            raise ImporterError(f"{phn}: no transcript ({stem.name}.txt is missing)")
        text = read_timit_text(txt)
        wave, rate = load_audio(audio)
        raw = read_sample_segments(phn, rate)
        phones, source = fold_segments(raw, TIMIT_MAP, str(phn), silence=_TIMIT_SILENCE)
        words = None
        if ".wrd" in group:
            words = _fix_word_overlaps(read_sample_segments(group[".wrd"], rate), str(group[".wrd"]))
        utt = Utterance(id=uid, audio="", speaker=speaker, text=text, duration=len(wave) / SAMPLE_RATE,
                        phones=phones, words=words, split=split, source_phones=source,
                        extra={"source": str(audio)})
        return wave, utt

    return build


def import_timit(src, out, *, skip_bad: bool = False, valid_fraction: float = 0.1,
                 test_fraction: float = 0.1, progress: bool = True, force: bool = False) -> ImportResult:
    """Import a TIMIT tree (LDC or NLTK-sample layout) into the corpus directory ``out``."""
    cands = timit_candidates(src, valid_fraction=valid_fraction, test_fraction=test_fraction)
    return run_import(out, cands, skip_bad=skip_bad, progress=progress, desc="import timit", force=force)
