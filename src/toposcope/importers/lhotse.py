"""Lhotse in and out (SPEC §2.4): ``toposcope import lhotse CUTS.jsonl.gz`` and ``toposcope export lhotse``.

Lhotse (the data library of k2/icefall and NeMo) describes a corpus as a CutSet, or as recordings +
supervisions manifests. Phone alignments live in ``supervision.alignment["phone"]`` (a list of
``AlignmentItem(symbol, start, duration)``), words in ``alignment["word"]``.

Import: one utterance per supervision. Its audio is the supervision's span of the cut (resampled to
16 kHz, channel 0 of a multi-channel cut, which is named in the error when there is more than one), its
phones the ``phone`` alignment items, mapped onto the canonical set like every importer (stress
stripped, silence labels -> ``sil``, ``--map`` for other symbol sets). Alignment times are read as
*recording* times (what Lhotse keeps when it truncates a cut), so the utterance-relative time of an
item is ``item.start - (cut.start + supervision.start)``. Split: ``supervision.custom["split"]`` when
present, else speaker-disjoint fractions. A supervision without a phone alignment is reported and
skipped, never imported unlabelled.

Export: one ``MonoCut`` per utterance (id = utterance id) over a ``Recording`` of the corpus's audio
file (absolute path; the audio is not copied), one supervision spanning it with ``text``, ``speaker``,
``alignment`` = ``{"phone": ..., "word": ...}`` and ``custom`` = ``{"split", "source_phones", extra
manifest fields}``, so that export -> import gives the same manifest back. Written atomically:
``OUT/cuts.jsonl.gz``, ``OUT/recordings.jsonl.gz``, ``OUT/supervisions.jsonl.gz``.

Lhotse is an optional dependency (``pip install 'toposcope[lhotse]'``).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from .._util import atomic_write, progress
from ..audio import SAMPLE_RATE, AudioError, resample
from ..corpus import Corpus, Utterance
from ..validation import finite_time
from .common import (Candidate, ImporterError, ImportResult, assign_splits, check_transcript, fold_segments,
                     read_label_map, run_import)

__all__ = ["import_lhotse", "lhotse_candidates", "export_lhotse", "require_lhotse"]

_CUSTOM_KEYS = ("split", "source_phones")


def require_lhotse():
    try:
        import lhotse
    except ImportError as e:  # lhotse or one of its imports (urllib3, ...) is missing
        raise ImporterError(f"Lhotse support needs the optional dependency: pip install 'toposcope[lhotse]' ({e})") \
            from None
    return lhotse


def _load_cuts(cuts, recordings, supervisions):
    lhotse = require_lhotse()
    try:
        if cuts is not None:
            path = Path(cuts)
            if not path.is_file():
                raise ImporterError(f"{path}: Lhotse cuts manifest not found")
            return lhotse.CutSet.from_file(path), str(path)
        if recordings is None or supervisions is None:
            raise ImporterError("give a CutSet manifest, or both --recordings and --supervisions")
        for p in (recordings, supervisions):
            if not Path(p).is_file():
                raise ImporterError(f"{p}: Lhotse manifest not found")
        recs = lhotse.RecordingSet.from_file(recordings)
        sups = lhotse.SupervisionSet.from_file(supervisions)
        return lhotse.CutSet.from_manifests(recordings=recs, supervisions=sups), f"{recordings} + {supervisions}"
    except ImporterError:
        raise
    except Exception as e:  # lhotse raises many types on malformed manifests
        raise ImporterError(f"{cuts or supervisions}: unreadable Lhotse manifest ({type(e).__name__}: {e})") from None


def _items(sup, key: str, offset: float, src: str = "lhotse") -> list[tuple[float, float, str]] | None:
    """``[(start, end, symbol)]`` of ``sup.alignment[key]`` relative to ``offset``; non-finite or negative
    times and durations are an :class:`ImporterError` naming the supervision (never clipped into range)."""
    ali = (sup.alignment or {}).get(key)
    if ali is None:
        return None
    out = []
    for i, a in enumerate(ali):
        where = f"{src}: alignment[{key!r}][{i}]"
        start = finite_time(a.start, where, "start", ImporterError)
        dur = finite_time(a.duration, where, "duration", ImporterError)
        if dur < 0:
            raise ImporterError(f"{where}: negative duration {dur}")
        out.append((start - offset, start + dur - offset, str(a.symbol)))
    return out


def _clip(segs, duration: float):
    """Clip to ``[0, duration]`` (ms rounding of Lhotse times), dropping what lies outside."""
    out = []
    for s, e, lab in segs:
        s, e = max(0.0, s), min(duration, e)
        if e > s + 1e-9:
            out.append((round(s, 6), round(e, 6), lab))
    return out


def lhotse_candidates(cuts=None, *, recordings=None, supervisions=None, label_map=None, phone_key: str = "phone",
                      word_key: str = "word", valid_fraction: float = 0.1, test_fraction: float = 0.1
                      ) -> list[Candidate]:
    cutset, where = _load_cuts(cuts, recordings, supervisions)
    mapping = read_label_map(label_map) if label_map is not None else None
    units = []
    for n, cut in enumerate(cutset):
        sups = list(cut.supervisions)
        if not sups:
            continue  # a cut without supervision has nothing to import
        for sup in sups:
            spk = sup.speaker or cut.recording_id
            units.append((sup.id, spk, cut, sup, f"{where} (cut {cut.id!r}, supervision {sup.id!r})"))
    if not units:
        raise ImporterError(f"{where}: no supervisions found")
    speakers = {spk for _, spk, *_ in units}
    by_spk = assign_splits(speakers, {"valid": valid_fraction, "test": test_fraction})
    cands = []
    for uid, spk, cut, sup, src in units:
        custom = dict(sup.custom or {})
        split = custom.get("split") or by_spk[spk]
        cands.append(Candidate(uid, src, _builder(uid, spk, split, cut, sup, src, mapping, phone_key, word_key)))
    return cands


def _builder(uid, spk, split, cut, sup, src, mapping, phone_key, word_key):
    def build():
        custom = dict(sup.custom or {})
        offset = float(cut.start) + float(sup.start)
        raw = _items(sup, phone_key, offset, src)
        if not raw:
            raise ImporterError(f"{src}: no phone alignment (supervision.alignment[{phone_key!r}] is missing)")
        text = check_transcript(sup.text or "", src)
        try:
            audio = cut.load_audio()  # (channels, samples) at cut.sampling_rate
        except Exception as e:
            raise AudioError(f"{src}: unreadable audio ({type(e).__name__}: {e})") from None
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 2 and audio.shape[0] > 1:
            raise AudioError(f"{src}: expected mono audio, got {audio.shape[0]} channels")
        wave = audio.reshape(-1)
        sr = int(cut.sampling_rate)
        a, b = max(0, int(round(float(sup.start) * sr))), min(len(wave), int(round(float(sup.end) * sr)))
        wave = wave[a:b]
        if sr != SAMPLE_RATE:
            wave = resample(wave, sr, SAMPLE_RATE)
        if len(wave) == 0:
            raise AudioError(f"{src}: the supervision holds no audio")
        duration = len(wave) / SAMPLE_RATE
        phones, source = fold_segments(_clip(raw, duration), mapping, src)
        words = _items(sup, word_key, offset, src)
        words = _clip([w for w in words if w[2].strip()], duration) if words else None
        if "source_phones" in custom:  # written by export_lhotse: the labels before mapping
            source = [tuple(x) for x in custom["source_phones"]]
        extra = {k: v for k, v in custom.items() if k not in _CUSTOM_KEYS}
        utt = Utterance(id=uid, audio="", speaker=spk, text=text, duration=duration, phones=phones, words=words,
                        split=split, source_phones=source, extra=extra)
        return wave, utt

    return build


def import_lhotse(cuts=None, out=None, *, recordings=None, supervisions=None, label_map=None,
                  phone_key: str = "phone", word_key: str = "word", skip_bad: bool = False,
                  valid_fraction: float = 0.1, test_fraction: float = 0.1, progress: bool = True,
                  force: bool = False) -> ImportResult:
    """Import a Lhotse CutSet (or recordings + supervisions manifests) into the corpus directory ``out``."""
    if out is None:
        raise ImporterError("import_lhotse: give the output corpus directory (out=...)")
    cands = lhotse_candidates(cuts, recordings=recordings, supervisions=supervisions, label_map=label_map,
                              phone_key=phone_key, word_key=word_key, valid_fraction=valid_fraction,
                              test_fraction=test_fraction)
    return run_import(out, cands, skip_bad=skip_bad, progress=progress, desc="import lhotse", force=force)


# -- export ----------------------------------------------------------------------------------------
def _write_jsonl_gz(path: Path, dicts) -> None:
    def write(f):
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as g:
            for d in dicts:
                g.write((json.dumps(d, ensure_ascii=False) + "\n").encode("utf-8"))

    atomic_write(path, write)


def export_lhotse(data, out, *, split: str | None = None, progress_bar: bool = True) -> dict[str, Path]:
    """Write corpus ``data`` (or one ``split`` of it) as a Lhotse CutSet with phone and word alignments.

    Returns ``{"cuts", "recordings", "supervisions"}`` -> written paths (``OUT/*.jsonl.gz``).
    """
    require_lhotse()
    from lhotse import MonoCut, Recording, SupervisionSegment
    from lhotse.supervision import AlignmentItem

    corpus = data if isinstance(data, Corpus) else Corpus.load(data)
    utts = list(corpus) if split is None else corpus.split(split)
    if not utts:
        raise ImporterError(f"{corpus.root}: no utterances to export" + (f" in split {split!r}" if split else ""))
    out = Path(out)
    cuts, recs, sups = [], [], []
    for u in progress(utts, desc="export lhotse", unit="utt", enabled=progress_bar):
        path = corpus.audio_path(u).resolve()
        try:
            rec = Recording.from_file(path, recording_id=u.id)
        except Exception as e:
            raise AudioError(f"{path} (utterance {u.id!r}): unreadable audio ({type(e).__name__}: {e})") from None
        ali = {"phone": [AlignmentItem(symbol=lab, start=round(s, 6), duration=round(e - s, 6))
                         for s, e, lab in u.phones]}
        if u.words:
            ali["word"] = [AlignmentItem(symbol=w, start=round(s, 6), duration=round(e - s, 6)) for s, e, w in u.words]
        custom = {**u.extra}
        if u.split is not None:
            custom["split"] = u.split
        if u.source_phones is not None:
            custom["source_phones"] = [[s, e, lab] for s, e, lab in u.source_phones]
        sup = SupervisionSegment(id=u.id, recording_id=u.id, start=0.0, duration=rec.duration, channel=0,
                                 text=u.text, speaker=u.speaker, alignment=ali, custom=custom or None)
        cut = MonoCut(id=u.id, start=0.0, duration=rec.duration, channel=0, recording=rec, supervisions=[sup])
        cuts.append(cut.to_dict())
        recs.append(rec.to_dict())
        sups.append(sup.to_dict())
    paths = {"cuts": out / "cuts.jsonl.gz", "recordings": out / "recordings.jsonl.gz",
             "supervisions": out / "supervisions.jsonl.gz"}
    for key, rows in (("recordings", recs), ("supervisions", sups), ("cuts", cuts)):
        _write_jsonl_gz(paths[key], rows)
    return paths
