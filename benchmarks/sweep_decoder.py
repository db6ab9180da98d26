"""Decoder sweep: what beam search with a language model does to a trained run's CER/WER (issue 14).

The run's log-probabilities are computed once per split; then

1. a grid of (word order, oov penalty, alpha, beta, beam) is decoded on the **valid** split (unseen
   sentences of the training voices); word order 0 is the character LM alone, any other order the word LM
   over its text's lexicon (:mod:`toposcope.wordlm`). The setting with the lowest valid CER + WER is chosen
   there (issue 14 sets targets for both; a higher LM weight trades CER for WER), and so is the best
   character-only setting, the word LM's control;
2. the chosen settings are decoded once on the **test** split (held-out voices), beside their controls:
   greedy decoding, beam search without an LM (alpha = 0, beta = 0), the best character-only setting, and
   an LM fitted on the corpus's train transcripts only (no outside text);
3. the LM text's overlap with the evaluated sentences is measured (share of their word 5-grams the LM
   text contains), the check that the LM does not simply know the test sentences.

Every LM is :func:`toposcope.lm.lm_for_corpus` (valid/test sentences and near duplicates left out).

    .venv/bin/python benchmarks/sweep_decoder.py --run RUN --data CORPUS [--fortunes] > table.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict


def log_probs(run, corpus, split: str) -> tuple[list[str], list]:
    from toposcope.data import SpeechDataset, load_features
    from toposcope.evaluate import iter_log_probs
    from toposcope.text import normalize_text

    ds = SpeechDataset(corpus.split(split), load_features(corpus, run.config.model.features, progress=False))
    lps: list = [None] * len(ds)
    for i, lp in iter_log_probs(run.model, ds):
        lps[i] = lp
    return [normalize_text(u.text) for _, _, u in ds.items], lps


def overlap(lm, refs: list[str], n: int = 5) -> float:
    """Share of the word n-grams of ``refs`` that occur anywhere in the LM's text."""
    from toposcope.lm import word_ngrams

    known = set().union(*(word_ngrams(t, n) for t in lm.texts))
    grams = [g for r in refs for g in word_ngrams(r, n)]
    return sum(g in known for g in grams) / max(1, len(grams))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--fortunes", action="store_true", help="LM text: train transcripts + the fortune pool")
    ap.add_argument("--order", type=int, default=8)
    ap.add_argument("--alpha", default="0.5,0.75,1.0")
    ap.add_argument("--beta", default="1.0,1.5,2.0")
    ap.add_argument("--beam", default="64")
    ap.add_argument("--words", default="0,3", help="word n-gram orders (0: the character LM alone)")
    ap.add_argument("--oov", default="-1,-2,-4", help="penalties for words outside the lexicon (word LMs only)")
    ap.add_argument("--word-alpha", default=None, help="alpha grid for the word LMs (default: --alpha)")
    ap.add_argument("--word-beta", default=None, help="beta grid for the word LMs (default: --beta)")
    ap.add_argument("--json", default=None, help="also write every row as JSON here")
    a = ap.parse_args(argv)

    import torch

    from toposcope.checkpoint import load_run
    from toposcope.corpus import Corpus
    from toposcope.decode import DecoderConfig, beam_search_many, decode_greedy
    from toposcope.evaluate import error_rates
    from toposcope.lm import LMConfig, lm_for_corpus
    from toposcope.wordlm import WordLMConfig, WordNgramLM, decoding_lm

    torch.set_num_threads(2)
    run, corpus = load_run(a.run), Corpus.load(a.data, alignments=False)
    cfg = LMConfig(order=a.order)
    lm = lm_for_corpus(corpus, fortunes=a.fortunes, config=cfg)
    lm_train = lm_for_corpus(corpus, config=cfg)
    splits = {s: log_probs(run, corpus, s) for s in ("valid", "test")}
    rows = []

    def row(split, what, lm_, dec):
        refs, lps = splits[split]
        t0 = time.perf_counter()
        hyps = [decode_greedy(lp) for lp in lps] if dec is None else beam_search_many(lps, lm_, dec)
        cer, wer = error_rates(refs, hyps)
        words = lm_.config if isinstance(lm_, WordNgramLM) else None
        r = {"split": split, "what": what, "lm_sentences": len(lm_.texts) if lm_ is not None else 0,
             "words": None if words is None else asdict(words),
             "decoder": None if dec is None else asdict(dec), "cer": cer, "wer": wer,
             "seconds": time.perf_counter() - t0}
        rows.append(r)
        w = "chars" if words is None else f"words {words.order}, oov {words.oov:g}"
        print(f"{split:5s} {what:32s} {w:18s} CER {100 * cer:5.1f}  WER {100 * wer:5.1f}  ({r['seconds']:.1f} s)",
              file=sys.stderr, flush=True)
        return r

    def lms(base):  # (WordLMConfig or None, the LM to decode with) for every word order and penalty
        out = []
        for order in (int(x) for x in a.words.split(",")):
            for oov in ([None] if order == 0 else (float(x) for x in a.oov.split(","))):
                wc = None if order == 0 else WordLMConfig(order=order, oov=oov)
                out.append((wc, decoding_lm(base, wc)))
        return out

    row("valid", "greedy", None, None)
    grid = []
    for wc, lm_ in lms(lm):
        al, be = (a.alpha, a.beta) if wc is None else (a.word_alpha or a.alpha, a.word_beta or a.beta)
        for x, y, k in itertools.product(al.split(","), be.split(","), a.beam.split(",")):
            grid.append((row("valid", "grid", lm_, DecoderConfig(beam=int(k), alpha=float(x), beta=float(y))), wc))
    best, best_wc = min(grid, key=lambda g: g[0]["cer"] + g[0]["wer"])
    chars = [g[0] for g in grid if g[1] is None]
    best_chars = min(chars, key=lambda r: r["cer"] + r["wer"]) if chars else None  # the word LM's control
    chosen = DecoderConfig(**best["decoder"])
    lm_best, lm_train_best = decoding_lm(lm, best_wc), decoding_lm(lm_train, best_wc)
    for split in ("valid", "test"):
        if split == "test":
            row(split, "greedy", None, None)
        row(split, "beam, no LM (alpha 0, beta 0)", None, DecoderConfig(beam=chosen.beam, alpha=0.0, beta=0.0))
        row(split, "beam 16 + LM", lm_best, DecoderConfig(beam=16, alpha=chosen.alpha, beta=chosen.beta))
        row(split, "beam + LM, train text only", lm_train_best, chosen)
        if best_wc is not None and best_chars is not None:
            row(split, "beam + character LM alone (best on valid)", lm, DecoderConfig(**best_chars["decoder"]))
        row(split, "beam + LM (chosen on valid)", lm_best, chosen)
    ov = {s: overlap(lm, splits[s][0]) for s in splits}
    ov_train = {s: overlap(lm_train, splits[s][0]) for s in splits}

    print(f"LM: {len(lm.texts)} sentences ({', '.join(lm.meta['sources'])}), order {a.order}; "
          f"left out {lm.meta['dropped_exact']} valid/test sentences and {lm.meta['dropped_ngram']} near duplicates. "
          f"Word 5-grams of the evaluated sentences found in its text: valid {100 * ov['valid']:.1f} %, "
          f"test {100 * ov['test']:.1f} % (train-only LM: {100 * ov_train['valid']:.1f} / {100 * ov_train['test']:.1f} %). "
          f"Chosen on valid: beam {chosen.beam}, alpha {chosen.alpha:g}, beta {chosen.beta:g}, "
          + ("the character LM alone" if best_wc is None else f"word order {best_wc.order}, oov {best_wc.oov:g}")
          + ".\n")
    print("| split | decoding | LM | beam | alpha | beta | CER % | WER % | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d, w = r["decoder"] or {}, r["words"]
        kind = "–" if not r["lm_sentences"] else ("characters" if w is None else f"words {w['order']}, oov {w['oov']:g}")
        print(f"| {r['split']} | {r['what']} | {kind} | {d.get('beam', '–')} | {d.get('alpha', '–')} | "
              f"{d.get('beta', '–')} | {100 * r['cer']:.1f} | {100 * r['wer']:.1f} | {r['seconds']:.1f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "overlap": ov, "overlap_train_lm": ov_train, "lm": lm.meta}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
