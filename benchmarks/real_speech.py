"""Real recorded speech: decode the eight spoken channel names of ``alsa-utils`` with trained runs (issue 14).

``/usr/share/sounds/alsa/{Front,Rear,Side}_{Left,Center,Right}.wav`` (Debian package ``alsa-utils``) are
recordings of one human speaker saying "front left", "rear center", ...: the only real speech on a
machine without internet. Eight two-word utterances are a smoke test, not a benchmark corpus: they show
whether a model trained on synthetic voices transfers to a human voice at all. The files are aligned and
resampled into a small corpus by ``toposcope align`` (pocketsphinx), and every ``RUN`` given decodes all of it.

    apt-get install alsa-utils
    .venv/bin/python benchmarks/real_speech.py RUN [RUN ...] [--lm LM.json]

With ``--lm`` (from ``toposcope lm``) each run is also decoded by beam search with that language model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ALSA = Path("/usr/share/sounds/alsa")


def build_corpus(out: Path, src: Path = ALSA) -> Path:
    """A corpus folder of the speech files in ``src`` made as a new user would: transcripts (from the file
    names) force-aligned by ``toposcope align`` (pocketsphinx), audio resampled to 16 kHz."""
    from toposcope.importers.align import align_corpus

    files = sorted(p for p in src.glob("*_*.wav"))
    if not files:
        raise SystemExit(f"no recordings in {src}: apt-get install alsa-utils")
    tsv = out.parent / "transcripts.tsv"
    tsv.write_text("".join(f"{p.stem}\t{p.stem.replace('_', ' ').lower()}\n" for p in files))
    align_corpus(src, tsv, out, speaker="alsa", progress=False)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="RUN")
    ap.add_argument("--lm", default=None, metavar="FILE", help="also decode with this language model")
    args = ap.parse_args(argv)
    from toposcope.checkpoint import load_run
    from toposcope.data import SpeechDataset, load_features
    from toposcope.corpus import Corpus
    from toposcope.evaluate import error_rates, transcribe
    from toposcope.lm import CharNgramLM

    lm = CharNgramLM.load(args.lm) if args.lm else None

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Corpus.load(build_corpus(Path(tmp) / "alsa"), alignments=False)
        for r in args.runs:
            run = load_run(r)
            store = load_features(corpus, run.config.model.features, progress=False, cache=False)
            ds = SpeechDataset(list(corpus), store)
            for how, model_lm in (("greedy", None), ("beam search + LM", lm)):
                if how != "greedy" and lm is None:
                    continue
                pairs = transcribe(run.model, ds, batch_size=8, progress=False, lm=model_lm)
                cer, wer = error_rates([a for a, _ in pairs], [b for _, b in pairs])
                print(f"{r} ({how}): CER {100 * cer:.1f} %, WER {100 * wer:.1f} % on {len(pairs)} utterances")
                for ref, hyp in pairs:
                    print(f"    {ref!r:>16} -> {hyp!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
