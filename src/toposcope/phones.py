"""The canonical phone inventory and the mappings importers use onto it (docs/method.md § Data and phones)."""

from __future__ import annotations

__all__ = [
    "PHONES", "PHONE_SET", "SILENCE", "VOWELS", "FESTIVAL_MAP", "MRPA_MAP", "TIMIT_MAP",
    "map_phone", "UnknownPhoneError",
]

SILENCE = "sil"

#: The 39 CMU/ARPAbet phones without stress, plus ``sil`` (order is the report's order).
PHONES: tuple[str, ...] = (
    "aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g",
    "hh", "ih", "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t",
    "th", "uh", "uw", "v", "w", "y", "z", "zh", SILENCE,
)
PHONE_SET = frozenset(PHONES)

VOWELS = frozenset({"aa", "ae", "ah", "ao", "aw", "ay", "eh", "er", "ey", "ih", "iy", "ow", "oy", "uh", "uw"})

#: Festival / Flite (radio phone set) -> canonical.
FESTIVAL_MAP: dict[str, str] = {"ax": "ah", "pau": SILENCE, "h#": SILENCE, "#": SILENCE, "sil": SILENCE}

#: Festival's British ``mrpa`` phone set (``rab_diphone``, ``don_diphone``, ``en1_mbrola``) -> canonical.
#: Consonants keep their names but ``h``; vowels go to the ARPAbet vowel of the same word in CMUdict
#: (``uh`` is the STRUT vowel, ARPAbet ``ah``; ``o`` the LOT vowel, ``aa``). The three centring
#: diphthongs of a non-rhotic accent map to their first vowel (``e@`` in "hair" -> ``eh``: CMUdict's
#: ``eh r`` without the ``r`` that the speaker does not say).
MRPA_MAP: dict[str, str] = {
    "uh": "ah", "e": "eh", "a": "ae", "o": "aa", "i": "ih", "u": "uh", "ii": "iy", "uu": "uw",
    "oo": "ao", "aa": "aa", "@@": "er", "ai": "ay", "ei": "ey", "oi": "oy", "au": "aw", "ou": "ow",
    "e@": "eh", "i@": "ih", "u@": "uh", "@": "ah", "h": "hh", "#": SILENCE, "pau": SILENCE,
}

#: TIMIT 61 -> canonical 39 + sil (the usual folding; dx -> d is our documented choice).
#: ``q`` (glottal stop) maps to ``None``: importers merge it into its neighbour (or sil).
TIMIT_MAP: dict[str, str | None] = {
    "ax": "ah", "ax-h": "ah", "ix": "ih", "axr": "er", "ux": "uw", "el": "l", "em": "m",
    "en": "n", "nx": "n", "eng": "ng", "hv": "hh", "dx": "d",
    "bcl": SILENCE, "dcl": SILENCE, "gcl": SILENCE, "pcl": SILENCE, "tcl": SILENCE, "kcl": SILENCE,
    "h#": SILENCE, "pau": SILENCE, "epi": SILENCE, "q": None,
}


class UnknownPhoneError(ValueError):
    """A label that is neither canonical nor covered by the mapping in use."""


def map_phone(label: str, mapping: dict[str, str | None] | None = None) -> str | None:
    """Map a source label onto the canonical inventory.

    Stress digits are stripped and case is folded (``AH0`` -> ``ah``). Raises
    :class:`UnknownPhoneError` for a label that is neither canonical nor in ``mapping``;
    returns ``None`` when the mapping says "drop" (TIMIT ``q``).
    """
    raw = label
    lab = label.strip().lower().rstrip("012")
    if mapping and lab in mapping:
        return mapping[lab]
    if lab in PHONE_SET:
        return lab
    raise UnknownPhoneError(f"unknown phone label {raw!r} (not in the 39 ARPAbet phones + sil, nor mapped)")
