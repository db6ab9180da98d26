"""An open-vocabulary word n-gram language model, spelled out letter by letter for CTC beam search
(docs/decoding.md § The word LM).

**Words.** Interpolated Kneser-Ney over the words of the LM's text, the estimator of :mod:`toposcope.lm`
with words for characters: sentences are left-padded with ``order - 1`` begin symbols and closed by an
end symbol ``</s>``, the highest order uses raw counts, lower orders continuation counts, one discount
``D`` for all, and the uniform distribution over the ``V`` words (plus ``</s>``) below order 1.

**Letters.** The beam search grows a prefix one character at a time, so the word model is factorised over
its lexicon (the words of its text). With ``h`` the previous ``order - 1`` words and ``p`` the letters of
the current word so far::

    M(h, p)                 = sum of P(w | h) over the lexicon words w that start with p
    P(next letter c | h, p) = M(h, p + c) / M(h, p)
    P(word ends | h, p)     = P(p | h) / M(h, p)            (the space, or the end of the sentence)

so the letters of a lexicon word multiply to exactly its word probability, and a partly spelled word is
scored by everything it could still become (no jump at word boundaries, which would make the beam drop
good prefixes in mid-word). ``M`` follows the Kneser-Ney recursion (sums of the discounted counts of the
words below a prefix, precomputed per context), so it costs a few dictionary lookups.

**Words outside the lexicon** are not forbidden: the character that leaves the lexicon costs ``oov``
(natural log, once per word), and the rest of that word, its end included, is scored by the character
LM; later histories see it as ``<unk>``. This makes the score an unnormalised one (the out-of-lexicon
paths add mass); ``oov`` is a decoding penalty, chosen on the valid split like the LM weight
(docs/benchmarks/decoding.md).

Deviation from the paper: Kell et al. decode greedily. Wav2Letter (Collobert et al., 2016) decodes with a
word LM and a lexicon; this one keeps unknown words possible through the character LM.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from .lm import EOS_INDEX, LM_CHARS, CharNgramLM, context_followers, kneser_ney_counts

__all__ = ["WordLMConfig", "WordNgramLM", "decoding_lm", "describe_lm", "lexicon"]

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_SPACE = LM_CHARS.index(" ")
_INDEX = {c: i for i, c in enumerate(LM_CHARS)}
_CACHE_SIZE = 200_000


@dataclass(frozen=True)
class WordLMConfig:
    """``order``: n of the word n-grams; ``discount``: Kneser-Ney's D in (0, 1); ``oov``: natural-log
    penalty for a word outside the lexicon (<= 0)."""

    order: int = 3
    discount: float = 0.75
    oov: float = 0.0

    def __post_init__(self):
        if not (1 <= int(self.order) <= 10):
            raise ValueError(f"word LM order must be between 1 and 10, got {self.order}")
        if not (0.0 < float(self.discount) < 1.0):
            raise ValueError(f"word LM discount must be in (0, 1), got {self.discount}")
        if not (math.isfinite(self.oov) and self.oov <= 0):
            raise ValueError(f"oov penalty must be a finite log-probability <= 0, got {self.oov}")


class WordNgramLM:
    """Word Kneser-Ney over the text of ``chars`` (a :class:`~toposcope.lm.CharNgramLM`, which also spells
    the words outside the lexicon). Same interface as the character LM: ``logprobs(prefix)`` -> ``(29,)``
    natural-log scores of each next character (``LM_CHARS`` order, then end of sentence), and
    ``end_logprob(prefix)``."""

    def __init__(self, chars: CharNgramLM, config: WordLMConfig = WordLMConfig()):
        self.chars = chars
        self.config = config
        n, d = config.order, config.discount
        counts = kneser_ney_counts(((BOS,) * (n - 1) + tuple(t.split()) + (EOS,) for t in chars.texts), n)
        # _follow[k][context of k words] = {word: count}; _total[k][context] = sum of those counts
        self._follow: list[dict] = [context_followers(ck) for ck in counts]
        self._total: list[dict] = [{h: sum(f.values()) for h, f in fk.items()} for fk in self._follow]
        unigrams = self._follow[0][()]
        self.lexicon: frozenset[str] = lexicon(chars.texts)  # = the words of the unigrams, </s> aside
        self._uniform = 1.0 / (len(self.lexicon) + 1)  # the lexicon and </s>
        # order-1 masses of every lexicon prefix (p -> M_1(p)) and the trie's children (p -> next letters)
        n0, g0 = self._total[0][()], d * len(unigrams) / self._total[0][()]
        self._m1: dict[str, float] = defaultdict(float)
        children: dict[str, set] = defaultdict(set)
        for w, c in unigrams.items():
            if w == EOS:
                continue
            v = max(c - d, 0.0) / n0 + g0 * self._uniform
            for i in range(len(w) + 1):
                self._m1[w[:i]] += v
                if i < len(w):
                    children[w[:i]].add(w[i])
        self._m1 = dict(self._m1)
        self._children = {p: "".join(sorted(cs)) for p, cs in children.items()}
        self._prefix_mass: dict = {}  # (k, context) -> {prefix: discounted mass of the seen followers}
        self._cache: dict = {}  # (history, partial word, start) -> lexicon part of logprobs, NaN elsewhere
        self._level_cache: dict = {}  # history -> the seen contexts of its orders

    @property
    def order(self) -> int:
        return self.config.order

    @property
    def texts(self) -> list[str]:
        return self.chars.texts

    @property
    def meta(self) -> dict:
        return self.chars.meta

    @property
    def path(self):
        return self.chars.path

    def info(self) -> dict:
        """What produced the scores: the character LM's settings and text counts, and the word LM's."""
        return {**self.chars.info(), "words": {**asdict(self.config), "lexicon": len(self.lexicon)}}

    # -- word probabilities -------------------------------------------------------------------------
    # Histories are kept as exactly ``order - 1`` words, <s>-padded on the left, unknown words as <unk>.
    def _history(self, words) -> tuple:
        keep = self.config.order - 1
        if not keep:
            return ()
        ws = tuple(w if w in self.lexicon or w in (BOS, EOS) else UNK for w in tuple(words)[-keep:])
        return (BOS,) * (keep - len(ws)) + ws

    def _levels(self, history: tuple) -> list:
        """``[(k, context, total, followers, backoff weight)]`` for the orders ``k >= 1`` whose context of
        ``history`` was seen, lowest first (the recursion of :meth:`prob` and :meth:`mass`)."""
        out = self._level_cache.get(history)
        if out is None:
            if len(self._level_cache) >= _CACHE_SIZE:
                self._level_cache.clear()
            out, d = [], self.config.discount
            for k in range(1, self.config.order):
                ctx = history[len(history) - k:]
                tot = self._total[k].get(ctx, 0)
                if tot:
                    f = self._follow[k][ctx]
                    out.append((k, ctx, tot, f, d * len(f) / tot))
            self._level_cache[history] = out
        return out

    def prob(self, history, word: str) -> float:
        """P(word | the last ``order - 1`` words of ``history``); ``word`` may be ``</s>``. Words outside the
        lexicon (in ``history`` too) count as ``<unk>``, which the LM never saw (its probability here is
        the uniform floor)."""
        return self._prob(self._history(history), word)

    def _prob(self, history: tuple, word: str) -> float:
        d, f0 = self.config.discount, self._follow[0][()]
        tot = self._total[0][()]
        p = max(f0.get(word, 0) - d, 0.0) / tot + d * len(f0) / tot * self._uniform
        for _, _, tot, f, g in self._levels(history):
            p = max(f.get(word, 0) - d, 0.0) / tot + g * p
        return p

    def mass(self, history, prefix: str) -> float:
        """M(h, prefix): the probability that the next word is a lexicon word starting with ``prefix``."""
        return self._mass(self._history(history), prefix)

    def _mass(self, history: tuple, prefix: str) -> float:
        m = self._m1.get(prefix, 0.0)
        if m:
            for k, ctx, _, _, g in self._levels(history):
                m = self._masses(k, ctx).get(prefix, 0.0) + g * m
        return m

    def _masses(self, k: int, ctx: tuple) -> dict:
        key = (k, ctx)
        out = self._prefix_mass.get(key)
        if out is None:
            if len(self._prefix_mass) >= _CACHE_SIZE:
                self._prefix_mass.clear()
            d, tot = self.config.discount, self._total[k][ctx]
            out = defaultdict(float)
            for w, c in self._follow[k][ctx].items():
                if w != EOS and c > d:
                    v = (c - d) / tot
                    for i in range(len(w) + 1):
                        out[w[:i]] += v
            out = self._prefix_mass[key] = dict(out)
        return out

    # -- the character interface the beam search uses ------------------------------------------------
    def _split(self, prefix: str) -> tuple[tuple, str]:
        sp, keep = prefix.rfind(" "), self.config.order - 1
        return self._history(prefix[:sp].rsplit(None, keep) if sp >= 0 and keep else ()), prefix[sp + 1:]

    def logprobs(self, prefix: str) -> np.ndarray:
        """Natural-log scores ``(29,)`` of each next character after the normalised text ``prefix``, then of
        ending the sentence there (module doc)."""
        history, partial = self._split(prefix)
        spell = self.chars.logprobs(prefix)
        if partial in self._m1:
            lex = self._lexicon_part(history, partial, not prefix)
            out = np.where(np.isnan(lex), self.config.oov + spell, lex)
            unknown_end = bool(partial) and np.isnan(lex[EOS_INDEX])  # the letters so far are no lexicon word
        else:  # already outside the lexicon: the character LM spells the word
            out, unknown_end = spell.copy(), True
        if unknown_end:  # ending an unknown word: then another word, or the end, with <unk> in the history
            after = self._history(history + (UNK,))
            out[_SPACE] += math.log(self._mass(after, ""))
            out[EOS_INDEX] += math.log(self._prob(after, EOS))
        return out

    def _lexicon_part(self, history: tuple, partial: str, start: bool) -> np.ndarray:
        """The lexicon's scores after ``history`` and the letters ``partial`` (NaN: not in the lexicon).

        A word's letters after the first are ``M(h, p + c) / M(h, p)``; its first letter is divided by
        ``M(h, "")`` too, and the space that ends a word is multiplied by the next word's ``M(h', "")``
        (the probability that a word, not the sentence end, follows), so the scores of the letters, the
        space and the end after a lexicon prefix sum to 1. At the start of the sentence (``start``) the
        first letter is not divided: nothing before it chose "a word follows"."""
        key = (history, partial, start)
        out = self._cache.get(key)
        if out is not None:
            return out
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        out = np.full(len(LM_CHARS) + 1, np.nan)
        m = 1.0 if start else self._mass(history, partial)
        for ch in self._children.get(partial, ""):
            out[_INDEX[ch]] = math.log(self._mass(history, partial + ch) / m)
        if not partial:  # before a word: the sentence may end instead
            out[EOS_INDEX] = math.log(self._prob(history, EOS) / m)
        elif partial in self.lexicon:  # the word may end here: then another word (space), or the end
            end, after = math.log(self._prob(history, partial) / m), self._history(history + (partial,))
            out[_SPACE] = end + math.log(self._mass(after, ""))
            out[EOS_INDEX] = end + math.log(self._prob(after, EOS))
        self._cache[key] = out
        return out

    def end_logprob(self, prefix: str) -> float:
        """Score of ending the sentence after ``prefix`` (a trailing space has already ended its word)."""
        return float(self.logprobs(prefix)[EOS_INDEX])

    def score(self, text: str) -> float:
        """Total score of a normalised sentence under :meth:`logprobs` (end included). For a sentence of
        lexicon words this is its word-model log-probability."""
        from .text import normalize_text

        t = normalize_text(text)
        return sum(float(self.logprobs(t[:i])[_INDEX[ch]]) for i, ch in enumerate(t)) + self.end_logprob(t)


def lexicon(texts) -> frozenset[str]:
    """The words of normalised ``texts`` (a :class:`WordNgramLM`'s lexicon, for the character LM's ``texts``)."""
    return frozenset(w for t in texts for w in t.split())


def decoding_lm(lm, config: WordLMConfig | None = WordLMConfig()):
    """The LM a beam search decodes with: ``lm`` (a :class:`~toposcope.lm.CharNgramLM` or its file) inside a
    :class:`WordNgramLM` of settings ``config``; ``config = None``: the character LM alone. A
    :class:`WordNgramLM` and ``None`` pass through unchanged."""
    if lm is None or isinstance(lm, WordNgramLM):
        return lm
    if not hasattr(lm, "logprobs"):
        lm = CharNgramLM.load(lm)
    return lm if config is None else WordNgramLM(lm, config)


def describe_lm(info: dict | None) -> str:
    """One phrase for an LM's :meth:`~toposcope.lm.CharNgramLM.info` record (tables and the report)."""
    if not info:
        return "no language model"
    chars = f"{info.get('order', '?')}-gram characters"
    w = info.get("words")
    if w:
        return (f"{w.get('order', '?')}-gram words over a {w.get('lexicon', '?')}-word lexicon (unknown words: "
                f"penalty {w.get('oov', '?')}, spelled by {chars}), {info.get('sentences', '?')} sentences")
    return f"{chars}, {info.get('sentences', '?')} sentences"
