"""Festival/ESPS ``.lab`` importer (docs/method.md § Data and phones): ``toposcope import lab DIR --out OUT``.

An ESPS label file has a header (``signal``, ``nfields``, ...) up to a line holding ``#``, then one
``end_time color label`` line per segment; each segment starts where the previous one ended (the
first at 0). Files without a ``#`` header whose lines all read ``start end label`` with integer
times are taken as HTK labels (100 ns units). Each ``X.lab`` needs ``X.wav`` (any rate: resampled to 16 kHz) and a transcript
``X.txt``. Labels: Festival's radio phone set (``pau`` -> ``sil``, ``ax`` -> ``ah``, docs/method.md § Data and phones),
ARPAbet, or whatever ``--map FILE`` maps. Speaker: the directory holding the files (``--speaker``
overrides).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..corpus import Utterance
from ..phones import FESTIVAL_MAP
from ..audio import SAMPLE_RATE
from .common import (Candidate, ImporterError, ImportResult, read_text_file, check_transcript, find_sibling,
                     fold_segments, load_audio, read_label_map, run_import)
from .textgrid import AUDIO_EXT, _splits
from ..validation import finite_time

__all__ = ["import_lab", "lab_candidates", "read_lab"]


def read_lab(path: Path) -> list[tuple[float, float, str]]:
    """Parse an ESPS/Festival ``.lab`` file into ``(start_s, end_s, label)`` segments."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ImporterError(f"{path}: unreadable label file ({e})") from None
    start = 0
    if any(line.strip() == "#" for line in lines):
        start = next(i for i, line in enumerate(lines) if line.strip() == "#") + 1
    elif _is_htk(lines):
        return _read_htk(path, lines)
    segs: list[tuple[float, float, str]] = []
    prev = 0.0
    for n, line in enumerate(lines[start:], start + 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 3:
            raise ImporterError(f"{path}:{n}: expected 'end_time color label', got {line!r}")
        try:
            end = float(parts[0])
        except ValueError:
            raise ImporterError(f"{path}:{n}: end time {parts[0]!r} is not a number") from None
        end = finite_time(end, f"{path}:{n}", "end time", ImporterError)
        label = parts[2].rstrip(";")
        if end < 0:
            raise ImporterError(f"{path}:{n}: end time {end:.3f} s is negative")
        if end <= prev and segs:
            raise ImporterError(f"{path}:{n}: end time {end:.3f} s is not after the previous end "
                                f"{prev:.3f} s: segments are unsorted or empty")
        if end <= prev:  # first segment ending exactly at 0: nothing to label
            continue
        segs.append((prev, end, label))
        prev = end
    if not segs:
        raise ImporterError(f"{path}: no segments")
    return segs


def _is_htk(lines) -> bool:
    """HTK labels (``start end label``, integer times in 100 ns units) instead of ESPS: every line
    starts with two integers and the second exceeds the first (ESPS puts a float end time first)."""
    rows = [line.split() for line in lines if line.strip()]
    return bool(rows) and all(len(r) >= 3 and _HTK_INT.fullmatch(r[0]) and _HTK_INT.fullmatch(r[1])
                              and int(r[1]) > int(r[0]) for r in rows)


#: HTK times: ASCII digits, at most 18 (100 ns units: 3000 years), so ``int / 1e7`` is exact enough.
_HTK_INT = re.compile(r"[0-9]{1,18}")


def _read_htk(path, lines):
    segs = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            a, b, label = line.split()[:3]
            segs.append((int(a) / 1e7, int(b) / 1e7, label))
    for k in range(1, len(segs)):
        if segs[k][0] < segs[k - 1][1] - 1e-9:
            raise ImporterError(f"{path}: HTK label {k + 1} {segs[k][2]!r} starts before the previous one ends")
    return segs


def lab_candidates(src, *, label_map=None, speaker: str | None = None, valid_fraction: float = 0.1,
                   test_fraction: float = 0.1) -> list[Candidate]:
    src = Path(src)
    if not src.is_dir():
        raise ImporterError(f"{src}: directory not found")
    mapping = dict(FESTIVAL_MAP)
    if label_map is not None:
        mapping.update(read_label_map(label_map))
    labs = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() == ".lab")
    if not labs:
        raise ImporterError(f"{src}: no .lab files found")
    units = []
    for p in labs:
        rel = p.parent.relative_to(src)
        spk = speaker or ("_".join(rel.parts) if rel.parts else src.resolve().name) or "unknown"
        uid = "_".join([*rel.parts, p.stem]) if rel.parts else p.stem
        units.append((uid, spk, p))
    split_of = _splits([(u, s) for u, s, _ in units], valid_fraction, test_fraction)
    return [Candidate(uid, str(p), _builder(uid, spk, split_of[uid], p, mapping)) for uid, spk, p in units]


def _builder(uid, spk, split, path, mapping):
    def build():
        audio = find_sibling(path, AUDIO_EXT)
        if audio is None:
            raise ImporterError(f"{path}: no audio ({path.stem}.wav is missing)")
        txt = find_sibling(path, (".txt",))
        if txt is None:
            raise ImporterError(f"{path}: no transcript ({path.stem}.txt is missing)")
        text = check_transcript(read_text_file(txt), str(txt))
        raw = read_lab(path)
        wave, _ = load_audio(audio)
        phones, source = fold_segments(raw, mapping, str(path))
        utt = Utterance(id=uid, audio="", speaker=spk, text=text, duration=len(wave) / SAMPLE_RATE,
                        phones=phones, split=split, source_phones=source, extra={"source": str(audio)})
        return wave, utt

    return build


def import_lab(src, out, *, label_map=None, speaker: str | None = None, skip_bad: bool = False,
               valid_fraction: float = 0.1, test_fraction: float = 0.1, progress: bool = True,
               force: bool = False) -> ImportResult:
    """Import ``.lab`` + ``.wav`` + ``.txt`` triples below ``src`` into the corpus directory ``out``."""
    cands = lab_candidates(src, label_map=label_map, speaker=speaker, valid_fraction=valid_fraction,
                           test_fraction=test_fraction)
    return run_import(out, cands, skip_bad=skip_bad, progress=progress, desc="import lab", force=force)
