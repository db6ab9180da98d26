"""Character n-gram language model: hand-computed Kneser-Ney values, normalisation, leak filter (toposcope.lm)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from toposcope.lm import EOS_INDEX, LM_CHARS, CharNgramLM, LMConfig, held_out_ngrams, lm_for_corpus, lm_texts

A, B, Z = LM_CHARS.index("a"), LM_CHARS.index("b"), LM_CHARS.index("z")
V = len(LM_CHARS) + 1  # 28 characters + end of sentence


def test_bigram_kneser_ney_by_hand():
    # "ab" padded: <a, ab, b$ (one each). Unigram continuation counts a, b, $ = 1 each (total 3, 3 types).
    lm = CharNgramLM(["ab"], LMConfig(order=2, discount=0.5))
    uni = lambda c: max(c - 0.5, 0) / 3 + 0.5 * 3 / 3 / V  # noqa: E731
    p = np.exp(lm.logprobs("a"))  # context "a": N(a.) = 1, one follower (b)
    assert p[B] == pytest.approx(0.5 + 0.5 * uni(1))
    assert p[Z] == pytest.approx(0.5 * uni(0))
    assert np.exp(lm.logprobs("")[A]) == pytest.approx(0.5 + 0.5 * uni(1))  # sentence start
    assert np.exp(lm.logprobs("ab")[EOS_INDEX]) == pytest.approx(0.5 + 0.5 * uni(1))
    assert lm.score("ab") == pytest.approx(3 * math.log(0.5 + 0.5 * uni(1)))
    # an unseen context passes the unigram distribution through
    assert np.exp(lm.logprobs("z")[A]) == pytest.approx(uni(1))


def test_distributions_sum_to_one_and_orders_differ():
    texts = ["the cat sat on the mat", "a cat is not a dog", "don't tell the dog"]
    for order in (1, 3, 6):
        lm = CharNgramLM(texts, LMConfig(order=order))
        for ctx in ("", "the c", "xyz q", "a dog", "'"):
            assert np.exp(lm.logprobs(ctx)).sum() == pytest.approx(1.0)
    lo, hi = CharNgramLM(texts, LMConfig(order=2)), CharNgramLM(texts, LMConfig(order=6))
    assert hi.perplexity(texts) < lo.perplexity(texts)  # a longer context fits its own text better
    assert hi.score("the cat sat") > hi.score("tqe cxt sjt")


def test_only_the_last_order_minus_one_chars_matter():
    lm = CharNgramLM(["hello there", "yellow fellow"], LMConfig(order=3))
    assert np.array_equal(lm.logprobs("some hel"), lm.logprobs("el"))
    assert lm.context_key("") == "<<" and lm.context_key("abc") == "bc"


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="order"):
        LMConfig(order=0)
    with pytest.raises(ValueError, match="discount"):
        LMConfig(discount=1.0)
    with pytest.raises(ValueError, match="no text"):
        CharNgramLM(["", "123 !!"])
    with pytest.raises(ValueError, match="no text"):
        CharNgramLM(["hello"]).perplexity([""])


def test_save_load_roundtrip_and_errors(tmp_path):
    lm = CharNgramLM(["It's a cat.", "a dog"], LMConfig(order=4, discount=0.6))
    p = lm.save(tmp_path / "lm.json", meta={"sources": ["x"]})
    back = CharNgramLM.load(p)
    assert back.config == lm.config and back.texts == ["it's a cat", "a dog"] and back.meta == {"sources": ["x"]}
    assert np.array_equal(back.logprobs("a c"), lm.logprobs("a c"))
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a toposcope language model"):
        CharNgramLM.load(tmp_path / "other.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not a toposcope language model"):
        CharNgramLM.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="toposcope lm"):
        CharNgramLM.load(tmp_path / "missing.json")


def test_held_out_ngrams_keep_short_sentences_whole():
    g = held_out_ngrams(["one two three four five six", "Tiny one!"], n=5)
    assert ("one", "two", "three", "four", "five") in g and ("two", "three", "four", "five", "six") in g
    assert ("tiny", "one") in g and len(g) == 3


def test_lm_texts_drop_exact_and_near_duplicates():
    held = ["The quick brown fox jumps over it.", "Short one here."]
    train = ["the quick brown fox jumps over it", "A cat naps."]
    extra = ["Yesterday the quick brown fox jumps over a dog.",  # shares "the quick brown fox jumps"
             "He said short one here again.",                    # contains a whole short held-out sentence
             "Quick brown foxes jump.",                          # no shared 5-gram: kept
             "A cat naps!"]                                      # same text as a train sentence
    kept, st = lm_texts(train, extra, exclude=held)
    assert kept == ["a cat naps", "quick brown foxes jump"]
    assert st == {"train": 1, "extra": 1, "dropped_exact": 1, "dropped_ngram": 2, "duplicates": 1}
    kept, st = lm_texts(train, extra)  # nothing to exclude
    assert len(kept) == 5 and st["dropped_ngram"] == st["dropped_exact"] == 0


def test_lm_for_corpus_never_sees_valid_or_test(tiny_corpus):
    lm = lm_for_corpus(tiny_corpus, extra=[u.text for u in tiny_corpus], config=LMConfig(order=5))
    held = {lm_texts([u.text], ())[0][0] for s in ("valid", "test") for u in tiny_corpus.split(s)}
    assert held and not held & set(lm.texts)
    assert lm.meta["sources"] == ["train", "text"] and lm.meta["excluded_splits"] == ["valid", "test"]
    assert lm.meta["dropped_exact"] >= len(held)  # the valid/test sentences given as extra text
    with pytest.raises(ValueError, match="no text left"):
        lm_for_corpus(tiny_corpus, use_train=False)


def test_bounded_cache_gives_the_same_numbers(monkeypatch):
    import toposcope.lm as lm_mod

    texts = ["the cat sat on the mat", "a cat is not a dog"]
    ref = CharNgramLM(texts, LMConfig(order=4))
    want = [ref.logprobs(p) for p in ("", "the", "a ca", "xyz", "the")]
    monkeypatch.setattr(lm_mod, "_CACHE_SIZE", 2)
    small = CharNgramLM(texts, LMConfig(order=4))
    got = [small.logprobs(p) for p in ("", "the", "a ca", "xyz", "the")]
    assert len(small._cache) <= 2 and all(np.array_equal(a, b) for a, b in zip(got, want))
