"""Word n-gram LM spelled over a lexicon: hand-computed Kneser-Ney, exact factorisation, unknown words
(toposcope.wordlm)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from toposcope.decode import DecoderConfig, ctc_beam_search
from toposcope.lm import EOS_INDEX, LM_CHARS, CharNgramLM, LMConfig
from toposcope.wordlm import EOS, UNK, WordLMConfig, WordNgramLM, decoding_lm

SPACE = LM_CHARS.index(" ")
TEXTS = ["a b", "a c", "bb a c", "the cat sat on the mat", "a cat"]


def word_lm(texts=TEXTS, order=2, **kw) -> WordNgramLM:
    return WordNgramLM(CharNgramLM(texts, LMConfig(order=3)), WordLMConfig(order=order, **kw))


def sentence_prob(lm: WordNgramLM, text: str) -> float:
    words = text.split()
    return math.prod(lm.prob(words[:i], w) for i, w in enumerate(words + [EOS]))


def test_bigram_kneser_ney_by_hand():
    # "a b", "a c" padded: <s> a, a b, b </s>, a c, c </s>. Continuation counts a 1, b 1, c 1, </s> 2 (N 5,
    # 4 types); V = 3 words + </s>, so P1(w) = max(N1(w) - .75, 0) / 5 + .75 * 4 / 5 / 4.
    lm = word_lm(["a b", "a c"])
    assert lm.prob([], "a") == pytest.approx((2 - 0.75) / 2 + 0.75 * 1 / 2 * 0.2)  # context <s>: a twice
    assert lm.prob(["a"], "b") == pytest.approx(0.25 / 2 + 0.75 * 2 / 2 * 0.2)  # 0.275
    assert lm.prob(["a"], "a") == pytest.approx(0.75 * 0.2)  # unseen after "a": backed off
    assert lm.prob(["a"], EOS) == pytest.approx(0.75 * ((2 - 0.75) / 5 + 0.15))  # P1(</s>) = 0.4
    assert lm.prob(["zz"], "b") == pytest.approx(0.2)  # unknown history: <unk>, never seen, backs off
    assert lm.mass(["a"], "") == pytest.approx(1 - lm.prob(["a"], EOS))  # every word, not the end
    assert lm.mass(["a"], "b") == pytest.approx(lm.prob(["a"], "b"))  # "b" starts one word only
    assert lm.mass(["a"], "q") == 0.0
    assert lm.lexicon == frozenset({"a", "b", "c"})


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("text", ["a b", "bb a c", "the cat sat on the mat", "a cat sat", "mat on a a a"])
def test_letters_multiply_to_the_word_probability(order, text):
    lm = word_lm(order=order)
    assert lm.score(text) == pytest.approx(math.log(sentence_prob(lm, text)))


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("prefix", ["", "t", "th", "the", "the c", "a ca", "a cat", "bb"])
def test_a_lexicon_prefix_continues_with_probability_one(order, prefix):
    # letters, the space and the end of the sentence after a lexicon prefix: a distribution (OOV paths aside)
    lm = word_lm(order=order)
    history, partial = lm._split(prefix)
    lex = lm._lexicon_part(history, partial, not prefix)
    assert np.nansum(np.exp(lex)) == pytest.approx(1.0)


def test_a_trailing_space_is_free():
    lm = word_lm(order=3)
    assert lm.score("a cat ") == pytest.approx(lm.score("a cat"))  # (space: x M(h', "")) x (end: / M(h', ""))


def test_unknown_words_pay_the_penalty_once_and_are_spelled_by_the_character_lm():
    lm = word_lm(oov=-3.0)
    c = lm.chars
    spelled = (c.logprobs("a ")[LM_CHARS.index("q")] + c.logprobs("a q")[LM_CHARS.index("x")]
               + c.logprobs("a qx")[EOS_INDEX])
    expected = (math.log(lm.prob([], "a") * lm.mass(["a"], "")) - 3.0 + spelled
                + math.log(lm.prob(["a", "qx"], EOS)))  # the space chose "a word follows"; the unknown one pays oov
    assert lm.prob(["a", "qx"], EOS) == lm.prob([UNK], EOS)
    assert lm.score("a qx") == pytest.approx(expected)
    # leaving the lexicon in mid-word ("ca" + "q"): the penalty, then the character LM
    assert lm.logprobs("a ca")[LM_CHARS.index("q")] == pytest.approx(-3.0 + c.logprobs("a ca")[LM_CHARS.index("q")])
    # a harsher penalty lowers unknown words only
    harsh = word_lm(oov=-9.0)
    assert harsh.score("a qx") == pytest.approx(lm.score("a qx") - 6.0)
    assert harsh.score("a cat") == pytest.approx(lm.score("a cat"))


def test_info_and_config_errors():
    lm = word_lm(order=3)
    info = lm.info()
    assert info["words"] == {"order": 3, "discount": 0.75, "oov": 0.0, "lexicon": len(lm.lexicon)}
    assert info["order"] == 3 and info["sentences"] == len(TEXTS)  # the character LM's settings
    with pytest.raises(ValueError, match="order"):
        WordLMConfig(order=0)
    with pytest.raises(ValueError, match="discount"):
        WordLMConfig(discount=0.0)
    with pytest.raises(ValueError, match="oov"):
        WordLMConfig(oov=0.5)


def test_decoding_lm_wraps_or_passes_through(tmp_path):
    chars = CharNgramLM(TEXTS, LMConfig(order=3))
    assert decoding_lm(chars, None) is chars
    w = decoding_lm(chars, WordLMConfig(order=2, oov=-2.0))
    assert isinstance(w, WordNgramLM) and w.chars is chars and w.config == WordLMConfig(order=2, oov=-2.0)
    assert decoding_lm(w, WordLMConfig(order=3)) is w  # already a word LM
    chars.save(tmp_path / "lm.json")
    assert decoding_lm(tmp_path / "lm.json").lexicon == w.lexicon
    assert decoding_lm(None) is None


def frames(*rows: dict) -> np.ndarray:
    from toposcope.text import ALPHABET

    lp = np.full((len(rows), len(ALPHABET)), -70.0)
    for t, row in enumerate(rows):
        for ch, p in row.items():
            lp[t, ALPHABET.index(ch)] = math.log(p)
    return lp


def test_the_lexicon_turns_an_acoustic_near_miss_into_a_word():
    # the acoustics prefer "cst" a little; "cat" is the lexicon's word
    lp = frames({"c": 0.9, "_": 0.1}, {"s": 0.55, "a": 0.45}, {"t": 0.9, "_": 0.1})
    lm = word_lm(["the cat", "a cat sat", "cat"], order=2, oov=-4.0)
    assert ctc_beam_search(lp, None, DecoderConfig(beta=0.0)) == "cst"
    assert ctc_beam_search(lp, lm, DecoderConfig(alpha=1.0, beta=0.0)) == "cat"
    # an unknown word the acoustics are sure of survives the penalty
    sure = frames({"c": 1.0}, {"s": 1 - 1e-8, "a": 1e-8}, {"t": 1.0})  # 18 nats against "cat"
    assert ctc_beam_search(sure, lm, DecoderConfig(alpha=1.0, beta=0.0)) == "cst"
