"""A character n-gram language model for CTC beam search (docs/decoding.md).

Interpolated Kneser-Ney over the 28 non-blank characters of the CTC alphabet (:mod:`toposcope.text`)
plus an end-of-sentence symbol. For a context ``h`` of the last ``order - 1`` characters (sentences
are left-padded with a begin symbol, so every context has full length)::

    p(c | h) = max(N(h c) - D, 0) / N(h)  +  D · T(h) / N(h) · p(c | h')      (h' = h without its first char)

with ``N`` the raw counts at the highest order and the continuation counts (how many distinct
characters precede the n-gram) below it, ``T(h)`` the number of characters seen after ``h``, and
the uniform distribution below order 1. A context never seen at some order passes its lower order's
distribution through unchanged. This is Chen & Goodman's (1998) interpolated Kneser-Ney with a single
discount ``D`` per order.

Deviation from the paper: Kell et al. report greedy decoding only; Wav2Letter (Collobert et al., 2016)
decodes with a word language model. This LM is a character model, so it needs no lexicon and has no
out-of-vocabulary words; it is fitted on text, never on the evaluated split (see :func:`lm_texts`).

The model is stored as its training text plus ``order`` and ``discount`` (JSON): small, auditable
(you can check what the LM knows), and re-fitted in seconds on load.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .text import ALPHABET, normalize_text

__all__ = ["LMConfig", "CharNgramLM", "lm_texts", "lm_for_corpus", "held_out_ngrams", "word_ngrams", "kneser_ney_counts", "context_followers", "LM_CHARS", "EOS_INDEX"]

#: The LM's vocabulary: the CTC alphabet without the blank (class ``i`` of the model is LM index
#: ``i - 1``), then the end-of-sentence symbol.
LM_CHARS: tuple[str, ...] = ALPHABET[1:]
EOS_INDEX = len(LM_CHARS)
_EOS, _BOS = "$", "<"  # internal symbols, never in normalised text
_VOCAB = "".join(LM_CHARS) + _EOS
_INDEX = {ch: i for i, ch in enumerate(_VOCAB)}
_CACHE_SIZE = 200_000  # contexts whose next-character distribution is kept


@dataclass(frozen=True)
class LMConfig:
    """``order``: n of the n-grams (context = ``order - 1`` characters); ``discount``: D in (0, 1)."""

    order: int = 8
    discount: float = 0.75

    def __post_init__(self):
        if not (1 <= int(self.order) <= 20):
            raise ValueError(f"lm order must be between 1 and 20, got {self.order}")
        if not (0.0 < float(self.discount) < 1.0):
            raise ValueError(f"lm discount must be in (0, 1), got {self.discount}")


class CharNgramLM:
    """Interpolated Kneser-Ney character n-gram model (module doc). ``logprobs(context)`` -> ``(29,)``."""

    def __init__(self, texts: Iterable[str], config: LMConfig = LMConfig()):
        self.config = config
        self.texts: list[str] = [t for t in (normalize_text(x) for x in texts) if t]
        if not self.texts:
            raise ValueError("no text to fit the language model on")
        n = config.order
        # per context h of length k: (its followers' LM indices as uint8 bytes, their counts as float64 bytes,
        # N(h) the total count); T(h), the number of distinct followers, is the length of the first
        self._follow: list[dict[str, tuple[bytes, bytes, int]]] = [
            {h: (bytes(_INDEX[c] for c in f), array("d", f.values()).tobytes(), sum(f.values()))
             for h, f in context_followers(ck).items()}
            for ck in kneser_ney_counts((_BOS * (n - 1) + t + _EOS for t in self.texts), n)]
        self._cache: dict[str, np.ndarray] = {}
        self.meta: dict = {}
        self.path: Path | None = None  # the file it was loaded from (set by load)

    @property
    def order(self) -> int:
        return self.config.order

    def context_key(self, prefix: str) -> str:
        """The last ``order - 1`` characters of ``_BOS``-padded ``prefix`` (the state the LM conditions on)."""
        n = self.config.order
        return (_BOS * (n - 1) + prefix)[len(prefix):] if n > 1 else ""

    def logprobs(self, prefix: str) -> np.ndarray:
        """Natural-log probabilities ``(29,)`` of each next character (``LM_CHARS`` order, then end of
        sentence) after the text ``prefix`` (normalised text; only its last ``order - 1`` chars matter)."""
        h = self.context_key(prefix)
        out = self._cache.get(h)
        if out is None:
            if len(self._cache) >= _CACHE_SIZE:  # bounded memory on long decodes (~55 MB at most)
                self._cache.clear()
            out = self._cache[h] = np.log(self._probs(h))
        return out

    def end_logprob(self, prefix: str) -> float:
        """Natural-log probability of the sentence ending after ``prefix`` (trailing spaces ignored: the LM's
        sentences never end in one)."""
        return float(self.logprobs(prefix.rstrip(" "))[EOS_INDEX])

    def info(self) -> dict:
        """The LM's settings, text counts (:attr:`meta`) and file, as recorded beside decoding results."""
        return {**self.meta, **asdict(self.config), "sentences": len(self.texts),
                **({"path": str(self.path)} if self.path else {})}

    def _probs(self, h: str) -> np.ndarray:
        d = self.config.discount
        p = np.full(len(_VOCAB), 1.0 / len(_VOCAB))
        for k in range(self.config.order):
            e = self._follow[k].get(h[len(h) - k:] if k else "")
            if e is None:
                continue
            ix, cs, tot = e
            c = np.zeros(len(_VOCAB))
            c[np.frombuffer(ix, dtype=np.uint8)] = np.frombuffer(cs, dtype=np.float64)
            p = np.maximum(c - d, 0.0) / tot + d * len(ix) / tot * p
        return p

    def score(self, text: str) -> float:
        """Total natural-log probability of a normalised sentence, end symbol included."""
        t = normalize_text(text)
        lp = 0.0
        for i, ch in enumerate(t):
            lp += float(self.logprobs(t[:i])[LM_CHARS.index(ch)])
        return lp + float(self.logprobs(t)[EOS_INDEX])

    def perplexity(self, texts: Sequence[str]) -> float:
        """Per-character perplexity (end symbols counted as characters) of ``texts``."""
        ts = [normalize_text(t) for t in texts]
        n = sum(len(t) + 1 for t in ts if t)
        if not n:
            raise ValueError("no text to score")
        return float(np.exp(-sum(self.score(t) for t in ts if t) / n))

    # -- files ------------------------------------------------------------------------------------
    def save(self, path, *, meta: dict | None = None) -> Path:
        """Write the model (its text, settings and ``meta``, default :attr:`meta`) as JSON, atomically."""
        from ._util import write_json_atomic

        path = Path(path)
        write_json_atomic(path, {"format": "toposcope-char-lm", "version": 1, "config": asdict(self.config),
                                 "meta": self.meta if meta is None else meta, "texts": self.texts})
        return path

    @classmethod
    def load(cls, path) -> "CharNgramLM":
        from ._util import read_json

        path = Path(path)
        try:
            d = read_json(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: language model file not found (make one with `toposcope lm`)") from None
        except ValueError as e:
            raise ValueError(f"not a toposcope language model: {e}") from None
        if not isinstance(d, dict) or d.get("format") != "toposcope-char-lm":
            raise ValueError(f"{path}: not a toposcope language model (made by `toposcope lm`)")
        lm = cls(d["texts"], LMConfig(**d.get("config", {})))
        lm.meta = dict(d.get("meta") or {})
        lm.path = path
        return lm


def kneser_ney_counts(padded: Iterable[Sequence], n: int) -> list[Counter]:
    """The counts interpolated Kneser-Ney is made of, for sequences already padded with ``n - 1`` begin
    symbols and one end symbol (strings of characters, or tuples of words): ``counts[k]`` maps each
    (k+1)-gram to its raw count at the highest order (``k = n - 1``) and to its continuation count (the
    number of distinct symbols seen before it) below."""
    raw: Counter = Counter()
    for s in padded:
        raw.update(s[i - n:i] for i in range(n, len(s) + 1))
    counts: list[Counter] = [Counter() for _ in range(n)]
    counts[n - 1] = raw
    for k in range(n - 1, 0, -1):
        for g in counts[k]:
            counts[k - 1][g[1:]] += 1  # one more distinct left extension of g[1:]
    return counts


def context_followers(counts: Counter) -> dict:
    """``{context: {symbol: count}}`` of one order of :func:`kneser_ney_counts`: each n-gram split into its
    context (all but the last symbol) and the symbol that follows it, in the order the counts hold them."""
    out: defaultdict = defaultdict(dict)
    for g, c in counts.items():
        out[g[:-1]][g[-1]] = c
    return dict(out)


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The set of ``n``-word sequences of a normalised ``text`` (empty when it has fewer than ``n`` words)."""
    w = text.split()
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def held_out_ngrams(texts: Iterable[str], n: int = 5) -> set[tuple[str, ...]]:
    """Every word ``n``-gram of the (normalised) ``texts``; a sentence of fewer than ``n`` words adds
    itself as one shorter n-gram, so a short sentence quoted inside a longer one is found too."""
    out: set[tuple[str, ...]] = set()
    for t in texts:
        t = normalize_text(t)
        if t:
            out |= word_ngrams(t, min(n, len(t.split())))
    return out


def _shares_ngram(text: str, grams: set[tuple[str, ...]], lengths: set[int]) -> bool:
    return any(not word_ngrams(text, k).isdisjoint(grams) for k in lengths)


def lm_texts(train: Iterable[str], extra: Iterable[str] = (), *, exclude: Iterable[str] = (),
             ngram: int = 5) -> tuple[list[str], dict]:
    """The LM's training text: ``train`` transcripts plus ``extra`` sentences, with every sentence that
    could leak an evaluated one removed. ``exclude`` are the sentences the LM must not know (the valid
    and test transcripts); a sentence is dropped when it equals one of them after normalisation or
    shares a word ``ngram``-gram with one (near duplicates: the same fortune in two files, a quote
    inside a longer one). Returns ``(texts, counts)`` with what was kept and dropped.
    """
    held = [normalize_text(t) for t in exclude]
    held_set = set(held)
    grams = held_out_ngrams(held, ngram)
    lengths = {len(g) for g in grams}
    kept, seen = [], set()
    stats = {"train": 0, "extra": 0, "dropped_exact": 0, "dropped_ngram": 0, "duplicates": 0}
    for source, texts in (("train", train), ("extra", extra)):
        for t in texts:
            t = normalize_text(t)
            if not t:
                continue
            if t in seen:
                stats["duplicates"] += 1
                continue
            seen.add(t)
            if t in held_set:
                stats["dropped_exact"] += 1
            elif _shares_ngram(t, grams, lengths):
                stats["dropped_ngram"] += 1
            else:
                kept.append(t)
                stats[source] += 1
    return kept, stats


def lm_for_corpus(data, *, extra: Iterable[str] = (), fortunes: bool = False, use_train: bool = True,
                  config: LMConfig = LMConfig(), ngram: int = 5) -> CharNgramLM:
    """Fit a :class:`CharNgramLM` for decoding corpus ``data`` (a :class:`~toposcope.corpus.Corpus` or its
    folder): its train transcripts (unless ``use_train`` is false), ``extra`` sentences, and with
    ``fortunes`` the whole sentence pool the synthetic corpus draws from
    (:func:`toposcope.synth.sentences.load_sentences`). The corpus's valid and test transcripts, and every
    sentence sharing a word ``ngram``-gram with them, are left out (:func:`lm_texts`), so the LM never
    knows a sentence it is scored on. ``lm.meta`` records the sources and what was dropped.
    """
    from itertools import chain

    from .corpus import Corpus

    corpus = data if isinstance(data, Corpus) else Corpus.load(data, alignments=False)
    sources = (["train"] if use_train else []) + (["fortunes"] if fortunes else [])
    pool: Iterable[str] = ()
    if fortunes:
        from .synth.sentences import load_sentences

        pool = load_sentences()
    extra = list(extra)
    if extra:
        sources.append("text")
    train = [u.text for u in corpus.split("train")] if use_train else []
    held = [u.text for s in ("valid", "test") for u in corpus.split(s)]
    texts, stats = lm_texts(train, chain(extra, pool), exclude=held, ngram=ngram)
    if not texts:
        raise ValueError(f"{corpus.root}: no text left for the language model (sources: {', '.join(sources) or 'none'})")
    lm = CharNgramLM(texts, config)
    lm.meta = {"corpus": str(corpus.root), "sources": sources, "excluded_splits": ["valid", "test"],
               "near_duplicate_ngram": ngram, **stats}
    return lm
