"""Phonetic organization of maps (beyond the seed; ``docs/method.md`` § Statistics, ``docs/statistics.md``).

Are phones with similar articulatory features mapped alike, and do different phones' most responsive
regions lie apart?

* :data:`FEATURES` -- an articulatory feature table of the 39 ARPAbet phones (the standard IPA
  descriptions of the General American values of CMUdict's phone set): consonants by manner, place
  and voicing; vowels by height, backness and rounding (diphthongs by their first element, flagged).
* :func:`phonetic_distance` -- the share of the seven features (class, manner, place, voicing,
  height, backness, rounding) in which two phones differ (a feature a phone does not have, e.g. the
  place of a vowel, is "none" and differs from any value): ``(G, G)`` in ``[0, 1]``.
* :func:`map_dissimilarity` -- ``1 - Pearson r`` of two phones' maps over the grid cells.
* :func:`mantel_r` -- the Pearson correlation of the two dissimilarities over the phone pairs (the
  Mantel statistic); its p-value comes from the label null (:mod:`toposcope.analysis.label_null`).
* :func:`region_separation` -- mean grid distance between the most responsive region centres (the
  argmax of the smoothed map, as :func:`toposcope.analysis.maps.find_region` picks it) of every pair
  of phones.

All functions are batched over leading axes so that the label null's permutations are evaluated
at once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..grid import window_mean

__all__ = ["FEATURE_NAMES", "FEATURES", "feature_row", "phonetic_distance", "map_dissimilarity", "mantel_r",
           "region_centres", "region_separation"]

#: The seven features compared by :func:`phonetic_distance`.
FEATURE_NAMES = ("class", "manner", "place", "voicing", "height", "backness", "rounding")


def _c(manner: str, place: str, voicing: str) -> dict:
    return {"class": "consonant", "manner": manner, "place": place, "voicing": voicing,
            "height": None, "backness": None, "rounding": None}


def _v(height: str, backness: str, rounding: str, ipa: str, diphthong: bool = False) -> dict:
    return {"class": "vowel", "manner": "vowel", "place": None, "voicing": "voiced", "height": height,
            "backness": backness, "rounding": rounding, "ipa": ipa, "diphthong": diphthong}


#: Articulatory features of the 39 canonical phones (IPA in ``ipa``). Sources: the IPA chart (2020) and
#: the usual ARPAbet-to-IPA correspondence of CMUdict (General American). Documented choices: ``ah``
#: is ʌ/ə (mid central), ``er`` is ɝ (mid central, unrounded), ``r`` is ɹ (alveolar approximant, a
#: liquid with ``l``), ``w`` is labial-velar, ``hh`` a glottal fricative; diphthongs take their first
#: element (aw, ay: low central; ey: mid front; ow: mid back rounded; oy: mid back rounded).
FEATURES: dict[str, dict] = {
    "aa": _v("low", "back", "unrounded", "ɑ"),
    "ae": _v("low", "front", "unrounded", "æ"),
    "ah": _v("mid", "central", "unrounded", "ʌ"),
    "ao": _v("mid", "back", "rounded", "ɔ"),
    "aw": _v("low", "central", "unrounded", "aʊ", True),
    "ay": _v("low", "central", "unrounded", "aɪ", True),
    "eh": _v("mid", "front", "unrounded", "ɛ"),
    "er": _v("mid", "central", "unrounded", "ɝ"),
    "ey": _v("mid", "front", "unrounded", "eɪ", True),
    "ih": _v("high", "front", "unrounded", "ɪ"),
    "iy": _v("high", "front", "unrounded", "i"),
    "ow": _v("mid", "back", "rounded", "oʊ", True),
    "oy": _v("mid", "back", "rounded", "ɔɪ", True),
    "uh": _v("high", "back", "rounded", "ʊ"),
    "uw": _v("high", "back", "rounded", "u"),
    "b": _c("stop", "bilabial", "voiced") | {"ipa": "b"},
    "p": _c("stop", "bilabial", "voiceless") | {"ipa": "p"},
    "d": _c("stop", "alveolar", "voiced") | {"ipa": "d"},
    "t": _c("stop", "alveolar", "voiceless") | {"ipa": "t"},
    "g": _c("stop", "velar", "voiced") | {"ipa": "ɡ"},
    "k": _c("stop", "velar", "voiceless") | {"ipa": "k"},
    "jh": _c("affricate", "postalveolar", "voiced") | {"ipa": "dʒ"},
    "ch": _c("affricate", "postalveolar", "voiceless") | {"ipa": "tʃ"},
    "v": _c("fricative", "labiodental", "voiced") | {"ipa": "v"},
    "f": _c("fricative", "labiodental", "voiceless") | {"ipa": "f"},
    "dh": _c("fricative", "dental", "voiced") | {"ipa": "ð"},
    "th": _c("fricative", "dental", "voiceless") | {"ipa": "θ"},
    "z": _c("fricative", "alveolar", "voiced") | {"ipa": "z"},
    "s": _c("fricative", "alveolar", "voiceless") | {"ipa": "s"},
    "zh": _c("fricative", "postalveolar", "voiced") | {"ipa": "ʒ"},
    "sh": _c("fricative", "postalveolar", "voiceless") | {"ipa": "ʃ"},
    "hh": _c("fricative", "glottal", "voiceless") | {"ipa": "h"},
    "m": _c("nasal", "bilabial", "voiced") | {"ipa": "m"},
    "n": _c("nasal", "alveolar", "voiced") | {"ipa": "n"},
    "ng": _c("nasal", "velar", "voiced") | {"ipa": "ŋ"},
    "l": _c("liquid", "alveolar", "voiced") | {"ipa": "l"},
    "r": _c("liquid", "alveolar", "voiced") | {"ipa": "ɹ"},
    "w": _c("glide", "labial-velar", "voiced") | {"ipa": "w"},
    "y": _c("glide", "palatal", "voiced") | {"ipa": "j"},
}


def feature_row(phone: str) -> tuple:
    """The seven features of ``phone`` (:data:`FEATURE_NAMES` order); ``KeyError`` for unknown phones."""
    try:
        f = FEATURES[phone]
    except KeyError:
        raise KeyError(f"no phonetic features for {phone!r}; known: the 39 ARPAbet phones") from None
    return tuple(f[k] for k in FEATURE_NAMES)


def phonetic_distance(phones: Sequence[str]) -> np.ndarray:
    """``(G, G)`` share of :data:`FEATURE_NAMES` in which two phones differ (0 on the diagonal)."""
    rows = [feature_row(p) for p in phones]
    G = len(rows)
    d = np.zeros((G, G))
    for i in range(G):
        for j in range(G):
            d[i, j] = sum(a != b for a, b in zip(rows[i], rows[j])) / len(FEATURE_NAMES)
    return d


def map_dissimilarity(values) -> np.ndarray:
    """``(..., G, C)`` map values (flatten grid-shaped maps first) -> ``(..., G, G)`` ``1 - Pearson r``
    over the cells (a constant map correlates 0 with everything)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"map_dissimilarity needs (..., G, C) values, got shape {x.shape}")
    z = x - x.mean(axis=-1, keepdims=True)
    norm = np.sqrt((z * z).sum(axis=-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(norm > 0, z / np.where(norm > 0, norm, 1.0), 0.0)
    # einsum's own loop, not BLAS: these products are small, and a multi-threaded BLAS spinning on a busy
    # 2-core machine cost 10-20x more CPU here (benchmarks/bench_maps.py)
    r = np.einsum("...pc,...qc->...pq", u, u)
    return 1.0 - np.clip(r, -1.0, 1.0)


def mantel_r(dissimilarity, distance) -> np.ndarray:
    """Pearson correlation over the pairs ``i < j`` of ``dissimilarity (..., G, G)`` with ``distance (G, G)``
    -> ``(...)`` (NaN where either side is constant)."""
    d = np.asarray(distance, dtype=np.float64)
    m = np.asarray(dissimilarity, dtype=np.float64)
    G = d.shape[0]
    if d.shape != (G, G) or m.shape[-2:] != (G, G):
        raise ValueError(f"mantel_r needs (..., G, G) and (G, G) matrices, got {m.shape} and {d.shape}")
    iu = np.triu_indices(G, 1)
    a = m[..., iu[0], iu[1]]
    b = d[iu]
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean()
    den = np.sqrt((a * a).sum(-1) * (b * b).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(-1) / den, np.nan)


def region_centres(maps) -> np.ndarray:
    """``(..., rows, cols)`` on-grid maps -> ``(..., 2)`` (row, col) of the argmax of the 3x3-smoothed map
    (first in row-major order on ties, as :func:`toposcope.analysis.maps.find_region`)."""
    m = np.asarray(maps, dtype=np.float64)
    sm = window_mean(m, 3)
    flat = sm.reshape(*sm.shape[:-2], -1)
    flat = np.where(np.isfinite(flat), flat, -np.inf)
    idx = flat.argmax(axis=-1)
    return np.stack(np.divmod(idx, m.shape[-1]), axis=-1).astype(np.float64)


def region_separation(maps) -> np.ndarray:
    """Mean Euclidean grid distance between the region centres of every pair of the ``G`` maps:
    ``(..., G, rows, cols)`` -> ``(...)``."""
    c = region_centres(maps)
    G = c.shape[-2]
    if G < 2:
        raise ValueError("region separation needs at least two maps")
    d = np.sqrt(((c[..., :, None, :] - c[..., None, :, :]) ** 2).sum(-1))
    iu = np.triu_indices(G, 1)
    return d[..., iu[0], iu[1]].mean(-1)
