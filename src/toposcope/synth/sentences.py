"""Sentences for the embedded corpus, from Debian's ``fortunes`` / ``fortunes-min`` (docs/method.md § Data and phones).

Fortune cookies are split into sentences; a sentence is kept when it consists of letters and
punctuation only (no digits, quotes, brackets or symbols), has 4-20 words, and has nothing a
synthesizer would expand differently from its spelling (all-caps acronyms, abbreviations such
as ``Mr.``). The list is de-duplicated on the normalised text and sorted, so sampling from it
with a seeded generator is deterministic.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from ..text import normalize_text
from .voices import MissingPackageError

__all__ = ["FORTUNE_DIR", "load_sentences", "split_fortune_text", "keep_sentence"]

FORTUNE_DIR = Path("/usr/share/games/fortunes")
MIN_WORDS, MAX_WORDS = 4, 20

_ALLOWED = re.compile(r"^[A-Z][A-Za-z ,.;:'!?-]*[.!?]$")
_ABBREV = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "prof", "gen", "sen", "rev", "lt",
           "col", "capt", "sgt", "mt", "ft", "co", "inc", "ltd", "no", "vol", "dept", "gov", "pres"}
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")


def keep_sentence(s: str) -> bool:
    """True when ``s`` is usable as a corpus sentence (see module doc)."""
    if not _ALLOWED.match(s) or "--" in s or "''" in s or "..." in s:
        return False
    tokens = re.findall(r"[A-Za-z']+", s)
    if not (MIN_WORDS <= len(tokens) <= MAX_WORDS):
        return False
    for t in tokens:
        core = t.strip("'")
        if len(core) > 1 and core.isupper():  # acronym: spelled out by the synthesizer
            return False
        if core.lower() in _ABBREV and re.search(rf"\b{re.escape(core)}\.", s):
            return False
    words = normalize_text(s).split()
    return MIN_WORDS <= len(words) <= MAX_WORDS


def split_fortune_text(raw: str) -> list[str]:
    """Split a fortune file's text (entries separated by ``%`` lines) into candidate sentences."""
    out = []
    for entry in re.split(r"^%\s*$", raw, flags=re.M):
        lines = []
        for line in entry.splitlines():
            if re.match(r"^\s*(--|-- |\u2014)", line):  # attribution
                break
            lines.append(line.strip())
        text = re.sub(r"\s+", " ", " ".join(lines)).strip()
        out.extend(p.strip() for p in _SENT_SPLIT.split(text) if p.strip())
    return out


@lru_cache(maxsize=4)
def _load(fortune_dir: str) -> tuple[str, ...]:
    d = Path(fortune_dir)
    if not d.is_dir():
        raise MissingPackageError(f"{d}: fortune files not found (apt-get install fortunes-min, "
                                  "or fortunes for more sentences)")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix == "" and p.with_suffix(".dat").exists())
    if not files:
        raise MissingPackageError(f"{d}: no fortune files found (apt-get install fortunes-min)")
    seen, keep = set(), []
    for f in files:
        raw = f.read_bytes().decode("utf-8", errors="replace")
        for s in split_fortune_text(raw):
            if keep_sentence(s):
                key = normalize_text(s)
                if key not in seen:
                    seen.add(key)
                    keep.append(s)
    if not keep:
        raise MissingPackageError(f"{d}: no usable sentences in the fortune files (apt-get install fortunes)")
    return tuple(sorted(keep))


def load_sentences(fortune_dir=FORTUNE_DIR) -> list[str]:
    """All usable sentences, sorted and unique by normalised text."""
    return list(_load(str(fortune_dir)))
