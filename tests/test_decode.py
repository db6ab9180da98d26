"""CTC prefix beam search: exact on small inputs, folds spaces, follows the LM (toposcope.decode)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toposcope.decode import DecoderConfig, ctc_beam_search, decode_greedy
from toposcope.lm import CharNgramLM, LMConfig
from toposcope.text import ALPHABET

C = len(ALPHABET)


def frames(*rows: dict) -> np.ndarray:
    """``(T, C)`` log-probs from per-frame ``{char: prob}`` (``"_"`` = blank); other classes get ~e-30."""
    lp = np.full((len(rows), C), -70.0)
    for t, row in enumerate(rows):
        for ch, p in row.items():
            lp[t, ALPHABET.index(ch)] = math.log(p)
    return lp


def brute_force(lp: np.ndarray, classes: list[int]) -> tuple[str, float]:
    """The most probable labelling: sum every path over ``classes``, collapse, take the best text."""
    total: dict[str, float] = {}
    for path in itertools.product(classes, repeat=lp.shape[0]):
        p = math.exp(sum(lp[t, c] for t, c in enumerate(path)))
        text = decode_greedy(np.eye(C)[list(path)])
        total[text] = total.get(text, 0.0) + p
    best = max(total, key=total.get)
    return best, total[best]


def test_beam_finds_the_label_greedy_misses():
    # Two frames, blank 0.6 / "a" 0.4 each: greedy reads "" (0.36), but P("a") = 0.16 + 0.24 + 0.24 = 0.64.
    lp = frames({"_": 0.6, "a": 0.4}, {"_": 0.6, "a": 0.4})
    assert decode_greedy(lp) == ""
    assert ctc_beam_search(lp, config=DecoderConfig(beta=0.0)) == "a"
    assert brute_force(lp, [0, ALPHABET.index("a")]) == ("a", pytest.approx(0.64))


def test_repeats_need_a_blank_between():
    a = ALPHABET.index("a")
    lp = frames({"a": 1.0}, {"a": 1.0}, {"_": 1.0}, {"a": 1.0})
    assert ctc_beam_search(lp, config=DecoderConfig(beta=0.0)) == "aa"
    assert brute_force(lp, [0, a])[0] == "aa"


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_wide_beam_equals_exhaustive_search(seed, T):
    rng = np.random.default_rng(seed)
    classes = [0, ALPHABET.index("a"), ALPHABET.index("b")]
    probs = rng.dirichlet(np.ones(3) * 0.7, size=T)
    lp = np.full((T, C), -70.0)
    lp[:, classes] = np.log(probs)
    best, p = brute_force(lp, classes)
    got = ctc_beam_search(lp, config=DecoderConfig(beam=3 ** T, beta=0.0))
    assert got == best or brute_force_score(lp, classes, got) == pytest.approx(p)  # ties may go either way


def brute_force_score(lp, classes, text):
    s = 0.0
    for path in itertools.product(classes, repeat=lp.shape[0]):
        if decode_greedy(np.eye(C)[list(path)]) == text:
            s += math.exp(sum(lp[t, c] for t, c in enumerate(path)))
    return s


def test_leading_and_double_spaces_fold_like_greedy():
    lp = frames({" ": 0.9, "_": 0.1}, {"a": 0.9, "_": 0.1}, {" ": 0.9, "_": 0.1}, {"_": 0.9, " ": 0.1},
                {" ": 0.9, "_": 0.1}, {"b": 0.9, "_": 0.1}, {" ": 0.9, "_": 0.1})
    assert decode_greedy(lp) == "a b"
    assert ctc_beam_search(lp, config=DecoderConfig(beta=0.0)) == "a b"


def test_language_model_breaks_an_acoustic_tie():
    # Two frames, "a"/"b" at 0.5 each: "ab", "ba", "a", "b" are equally likely (0.25) to the acoustics.
    lp = frames({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5})
    lm = CharNgramLM(["ba", "ba ba", "a ba"], LMConfig(order=3))
    assert ctc_beam_search(lp, lm, DecoderConfig(alpha=1.0, beta=2.0)) == "ba"
    lm = CharNgramLM(["ab", "ab ab"], LMConfig(order=3))
    assert ctc_beam_search(lp, lm, DecoderConfig(alpha=1.0, beta=2.0)) == "ab"
    # the character bonus: a large beta makes the decoder prefer two characters over one, a negative one fewer
    assert len(ctc_beam_search(lp, config=DecoderConfig(beta=5.0))) == 2
    assert len(ctc_beam_search(lp, config=DecoderConfig(beta=-5.0))) == 1


def test_pruned_classes_are_never_emitted():
    lp = frames({"a": 0.9997, "z": 0.0003})
    assert ctc_beam_search(lp, config=DecoderConfig(beta=50.0, prune=-2.0)) == "a"
    assert ctc_beam_search(lp, config=DecoderConfig(beta=50.0, prune=-9.0)) in {"a", "z"}


def test_config_and_shape_errors():
    for bad in (dict(beam=0), dict(alpha=-1.0), dict(alpha=math.nan), dict(beta=math.inf), dict(prune=0.0)):
        with pytest.raises(ValueError):
            DecoderConfig(**bad)
    with pytest.raises(ValueError, match="shape"):
        ctc_beam_search(np.zeros((3, 5)))
    assert ctc_beam_search(np.zeros((0, C))) == ""


def test_many_utterances_in_processes_equal_one_at_a_time():
    from toposcope.decode import beam_search_many

    rng = np.random.default_rng(0)
    lps = [np.log(rng.dirichlet(np.ones(C) * 0.3, size=int(rng.integers(0, 12)))) for _ in range(24)]
    lm = CharNgramLM(["a cab", "bad cab", "a dab"], LMConfig(order=3))
    cfg = DecoderConfig(beam=4)
    one = [ctc_beam_search(lp, lm, cfg) for lp in lps]
    assert beam_search_many(lps, lm, cfg, jobs=2) == one
    assert beam_search_many(lps, lm, cfg, jobs=1) == one
    assert beam_search_many([], lm, cfg, jobs=2) == []
