"""Test-time VTLP: does decoding under several mel warps close the held-out-voice gap? (issue 14, not adopted)

Each utterance's features are warped along the mel axis (:func:`toposcope.augment.warp_mel`, the VTLP the
shipped ``small`` trains with) by every factor in ``--warps``, and the model's outputs are combined two ways:
the mean posterior over the warps, and the single warp the model is most confident under (highest mean
frame maximum log-probability; no labels used). The control is the unwarped input (factor 1.0). Each is
decoded greedily and, with ``--lm``, by beam search (beam 16) with that language model.

    .venv/bin/python benchmarks/prototypes/tta_vtlp.py RUN CORPUS [--lm LM.json] [--warps 0.9,0.95,1,1.05,1.1]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def warped_log_probs(run, corpus, split: str, warps: list[float]) -> tuple[list[str], list[np.ndarray]]:
    """References and, per utterance, ``(n_warps, T', n_classes)`` log-probabilities."""
    from toposcope.augment import warp_mel
    from toposcope.data import SpeechDataset, collate, load_features
    from toposcope.text import normalize_text

    ds = SpeechDataset(corpus.split(split), load_features(corpus, run.config.model.features, progress=False))
    refs, out = [], []
    with torch.no_grad():
        for i in range(len(ds)):
            feats, target, utt = ds[i]
            per_warp = []
            for a in warps:
                b = collate([(warp_mel(feats, a), target, utt)])
                n = int(run.model.output_lengths(b.lengths)[0])
                per_warp.append(run.model(b.feats, b.lengths)[0, :n].numpy())
            refs.append(normalize_text(utt.text))
            out.append(np.stack(per_warp))
    return refs, out


def combine(per_utt: list[np.ndarray], warps: list[float]) -> dict[str, list[np.ndarray]]:
    from scipy.special import logsumexp

    k = warps.index(1.0)
    return {"warp 1.0 (control)": [w[k] for w in per_utt],
            "mean posterior": [logsumexp(w, axis=0) - np.log(len(warps)) for w in per_utt],
            "most confident warp": [w[int(np.argmax(w.max(-1).mean(-1)))] for w in per_utt]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("corpus")
    ap.add_argument("--lm", default=None)
    ap.add_argument("--warps", default="0.9,0.95,1.0,1.05,1.1")
    a = ap.parse_args()

    from toposcope.checkpoint import load_run
    from toposcope.corpus import Corpus
    from toposcope.decode import DecoderConfig, beam_search_many, decode_greedy
    from toposcope.evaluate import error_rates
    from toposcope.lm import CharNgramLM

    torch.set_num_threads(2)
    warps = [float(x) for x in a.warps.split(",")]
    if 1.0 not in warps:
        raise SystemExit("--warps must include 1.0 (the control)")
    run, corpus = load_run(a.run), Corpus.load(a.corpus, alignments=False)
    lm = CharNgramLM.load(a.lm) if a.lm else None
    for split in ("valid", "test"):
        refs, per_utt = warped_log_probs(run, corpus, split, warps)
        for name, lps in combine(per_utt, warps).items():
            cer, wer = error_rates(refs, [decode_greedy(x) for x in lps])
            line = f"{split:5s} {name:20s} greedy CER {100 * cer:.1f} WER {100 * wer:.1f}"
            if lm is not None:
                cer, wer = error_rates(refs, beam_search_many(lps, lm, DecoderConfig(beam=16)))
                line += f" | beam 16 + LM CER {100 * cer:.1f} WER {100 * wer:.1f}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
