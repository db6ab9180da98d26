"""CTC prefix beam search with an optional character language model (docs/decoding.md).

Greedy decoding (:func:`toposcope.text.ctc_greedy`) takes the best class per frame; the beam search
instead keeps the ``beam`` most probable *label sequences* (prefixes), summing over every alignment
that collapses to each (Hannun et al., 2014, "First-pass large vocabulary continuous speech
recognition using bi-directional recurrent DNNs", Algorithm 1). A prefix ``y`` is ranked by::

    log P_ctc(y | x) + alpha · log P_lm(y) + beta · |y|

where ``P_lm`` is a :class:`toposcope.lm.CharNgramLM` or a :class:`toposcope.wordlm.WordNgramLM` (anything
with ``logprobs(prefix) -> (29,)`` and ``end_logprob(prefix)``; end-of-sentence included at the end) and
``beta`` rewards each character, offsetting the LM's pull towards short outputs. Leading and repeated
spaces are folded into the prefix they follow, as :func:`~toposcope.text.ctc_greedy` collapses them.

Deviation from the paper: Kell et al. decode greedily. Beam search changes only the text read off the
model's output, never the model or anything mapped from it.
"""

from __future__ import annotations

import heapq
import math
import multiprocessing as mp
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .lm import CharNgramLM
from .text import ALPHABET, ctc_greedy

__all__ = ["DecoderConfig", "ctc_beam_search", "beam_search_many", "decode_greedy"]

_NEG = -math.inf
_SPACE = ALPHABET.index(" ")


@dataclass(frozen=True)
class DecoderConfig:
    """Beam search settings. ``alpha``: LM weight; ``beta``: bonus per output character (both on natural
    logs); ``prune``: classes whose frame log-probability is below this are not extended (natural log;
    -8 keeps every class with probability above 0.03 %). The defaults are the best of a sweep on the
    valid split of the default synthetic corpus with the word LM (docs/benchmarks/decoding.md; the character
    LM alone did best there with alpha 0.75, beta 1.0)."""

    beam: int = 64
    alpha: float = 1.0
    beta: float = 1.5
    prune: float = -8.0

    def __post_init__(self):
        if int(self.beam) < 1:
            raise ValueError(f"beam must be at least 1, got {self.beam}")
        if not math.isfinite(self.alpha) or self.alpha < 0:
            raise ValueError(f"alpha (LM weight) must be a finite number >= 0, got {self.alpha}")
        if not math.isfinite(self.beta):
            raise ValueError(f"beta (character bonus) must be finite, got {self.beta}")
        if not self.prune < 0:
            raise ValueError(f"prune must be a negative log-probability, got {self.prune}")


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG:
        return b
    if b == _NEG:
        return a
    m = a if a > b else b
    return m + math.log1p(math.exp(-abs(a - b)))


def decode_greedy(log_probs) -> str:
    """Greedy text of one utterance's ``(T, n_classes)`` log-probabilities (best class per frame)."""
    return ctc_greedy(np.asarray(log_probs).argmax(-1).tolist())


def ctc_beam_search(log_probs, lm: CharNgramLM | None = None, config: DecoderConfig = DecoderConfig()) -> str:
    """Most probable text of one utterance under the score of the module doc.

    ``log_probs``: ``(T, n_classes)`` natural-log class probabilities of one utterance (padding removed),
    class 0 the blank, in :data:`toposcope.text.ALPHABET` order. Without ``lm`` the ``alpha`` term is 0.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[1] != len(ALPHABET):
        raise ValueError(f"log_probs must have shape (T, {len(ALPHABET)}), got {tuple(lp.shape)}")
    alpha, beta = (config.alpha if lm is not None else 0.0), config.beta
    # prefix -> [log P(prefix, path ends in blank), log P(prefix, path ends in its last char)]
    beams: dict[str, tuple[float, float]] = {"": (0.0, _NEG)}
    bonus: dict[str, float] = {"": 0.0}  # prefix -> alpha · log P_lm(prefix) + beta · len(prefix)
    rows: dict[str, np.ndarray] = {}  # prefix -> lm.logprobs(prefix): a prefix is extended on many frames
    for row in lp:
        blank = float(row[0])
        cands = [(int(c), ALPHABET[c], float(row[c])) for c in np.flatnonzero(row[1:] > config.prune) + 1]
        nxt: dict[str, list[float]] = {}
        for pre, (pb, pnb) in beams.items():
            tot = _logaddexp(pb, pnb)
            s = nxt.get(pre)
            if s is None:
                s = nxt[pre] = [_NEG, _NEG]
            s[0] = _logaddexp(s[0], tot + blank)
            last = pre[-1] if pre else ""
            lm_row = None
            for c, ch, p in cands:
                if c == _SPACE and (not pre or last == " "):  # folded, as greedy decoding does
                    s[0] = _logaddexp(s[0], tot + p)
                    continue
                if ch == last:  # "aa" -> "a" unless a blank separates them
                    s[1] = _logaddexp(s[1], pnb + p)
                    ext = pb + p
                else:
                    ext = tot + p
                new = pre + ch
                if new not in bonus:
                    if lm is not None and lm_row is None:
                        lm_row = rows.get(pre)
                        if lm_row is None:
                            lm_row = rows[pre] = lm.logprobs(pre)
                    bonus[new] = bonus[pre] + beta + (alpha * float(lm_row[c - 1]) if lm is not None else 0.0)
                t = nxt.get(new)
                if t is None:
                    nxt[new] = [_NEG, ext]
                else:
                    t[1] = _logaddexp(t[1], ext)
        if len(nxt) > config.beam:
            scored = [(_logaddexp(v[0], v[1]) + bonus[k], k) for k, v in nxt.items()]
            keep = heapq.nlargest(config.beam, scored)
            beams = {k: (nxt[k][0], nxt[k][1]) for _, k in keep}
        else:
            beams = {k: (v[0], v[1]) for k, v in nxt.items()}

    def final(prefix: str) -> float:
        s = _logaddexp(*beams[prefix]) + bonus[prefix]
        if lm is not None:
            s += alpha * lm.end_logprob(prefix)
        return s

    return max(beams, key=final).strip()


_WORKER: tuple = ()


def _init_worker(lm, config) -> None:
    global _WORKER
    _WORKER = (lm, config)


def _search_one(log_probs) -> str:
    return ctc_beam_search(log_probs, *_WORKER)


def beam_search_many(log_probs: Sequence, lm: CharNgramLM | None = None, config: DecoderConfig = DecoderConfig(),
                     *, jobs: int | None = None, progress: bool = False, desc: str = "beam search") -> list[str]:
    """:func:`ctc_beam_search` of every ``(T, n_classes)`` array in ``log_probs``, in order, spread over
    ``jobs`` processes (default: the usable cores; forked, so the LM is shared, not copied per item).
    The result does not depend on ``jobs``."""
    from ._util import progress as progress_bar
    from ._util import usable_cores

    items = list(log_probs)
    jobs = usable_cores() if jobs is None else int(jobs)
    if jobs <= 1 or len(items) < 4 * jobs or "fork" not in mp.get_all_start_methods():
        return [ctc_beam_search(lp, lm, config)
                for lp in progress_bar(items, enabled=progress, desc=desc, unit="utt")]
    with mp.get_context("fork").Pool(jobs, initializer=_init_worker, initargs=(lm, config)) as pool:
        it = pool.imap(_search_one, items, chunksize=max(1, min(16, len(items) // (8 * jobs))))
        return list(progress_bar(it, enabled=progress, desc=desc, unit="utt", total=len(items)))
