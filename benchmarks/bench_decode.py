"""Benchmark: CTC beam search with the word LM and with the character LM alone, one process.

The model's log-probabilities of the first ``--n`` utterances of a split are computed once, then each LM
decodes them ``--repeats`` times with the default :class:`toposcope.decode.DecoderConfig` (beam 64), each time
with a fresh LM fitted from its file (empty caches, as in ``evaluate``); the best times of the repeats are
reported, for loading the LM and for decoding, and a digest of the hypotheses, so that two versions of the
code can be checked to decode the same text::

    .venv/bin/python benchmarks/bench_decode.py --run DEMO/runs/topo --data DEMO/corpus --lm DEMO/lm.json

Record the numbers in ``docs/benchmarks/decoding.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="run folder (its best checkpoint is used)")
    ap.add_argument("--data", required=True, help="corpus folder")
    ap.add_argument("--lm", required=True, help="LM file (toposcope lm)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=100, help="utterances decoded (default 100)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)

    from toposcope.checkpoint import load_run
    from toposcope.corpus import Corpus
    from toposcope.data import SpeechDataset, load_features
    from toposcope.decode import DecoderConfig, ctc_beam_search
    from toposcope.evaluate import iter_log_probs
    from toposcope.lm import CharNgramLM
    from toposcope.wordlm import WordLMConfig, decoding_lm

    torch.set_num_threads(2)
    run = load_run(args.run, which="best")
    corpus = Corpus.load(args.data, alignments=False)
    ds = SpeechDataset(corpus.split(args.split), load_features(corpus, run.config.model.features, progress=False))
    log_probs: list = [None] * len(ds)
    for i, lp in iter_log_probs(run.model, ds):
        log_probs[i] = lp
    log_probs = log_probs[:args.n]
    frames = sum(len(lp) for lp in log_probs)
    print(f"{len(log_probs)} utterances of {args.split} ({frames} output frames); load average "
          f"{os.getloadavg()[0]:.2f}")
    for name, words in (("word LM", WordLMConfig()), ("character LM", None)):
        load = best = float("inf")
        hyps: list[str] = []
        for _ in range(args.repeats):  # a fresh LM each time: its caches start empty, as in `evaluate`
            t = time.perf_counter()
            lm = decoding_lm(CharNgramLM.load(args.lm), words)
            load = min(load, time.perf_counter() - t)
            t = time.perf_counter()
            hyps = [ctc_beam_search(lp, lm, DecoderConfig()) for lp in log_probs]
            best = min(best, time.perf_counter() - t)
        digest = hashlib.sha256("\n".join(hyps).encode()).hexdigest()[:12]
        print(f"{name:13s} load {load:5.2f} s  decode {best:6.2f} s ({1000 * best / len(log_probs):.0f} ms per "
              f"utterance)  hypotheses sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
