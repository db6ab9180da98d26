"""``toposcope evaluate``: CER/WER of a trained run per split and per speaker."""

from __future__ import annotations

HELP = "CER and WER of a trained run on a corpus split, per speaker (JSON + table)"
DESCRIPTION = ("Greedy-decode a split of a corpus with a trained run, print CER/WER per speaker and in total, "
               "and write RUN/eval/<split>.json. With --lm FILE (from `toposcope lm`) the same output is also "
               "beam-searched with a language model made of its text (a word n-gram over its words, which the "
               "character model spells when a word is not among them) and both results are reported.")


def add_arguments(p) -> None:
    from ..decode import DecoderConfig
    from ..validation import count_arg
    from ..wordlm import WordLMConfig

    p.add_argument("run", metavar="RUN", help="run directory written by `toposcope train`")
    p.add_argument("--data", required=True, metavar="DIR", help="corpus directory")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lm", default=None, metavar="FILE", help="character language model from `toposcope lm`: "
                   "also decode with CTC beam search + LM")
    d = DecoderConfig()
    p.add_argument("--beam", type=count_arg(1), default=d.beam, metavar="N", help=f"beam width (default {d.beam})")
    p.add_argument("--alpha", type=float, default=d.alpha, metavar="A", help=f"LM weight (default {d.alpha})")
    p.add_argument("--beta", type=float, default=d.beta, metavar="B",
                   help=f"bonus per output character (default {d.beta})")
    w = WordLMConfig()
    p.add_argument("--words", type=count_arg(0), default=w.order, metavar="N",
                   help=f"order of the word n-gram over the LM text's lexicon (default {w.order}; 0: the character "
                        "LM alone)")
    p.add_argument("--oov", type=float, default=w.oov, metavar="P",
                   help=f"log-probability penalty for a word outside the lexicon (default {w.oov:g})")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from pathlib import Path

    from ..decode import DecoderConfig
    from ..evaluate import evaluate, format_table
    from ..wordlm import WordLMConfig

    decoder = DecoderConfig(beam=args.beam, alpha=args.alpha, beta=args.beta) if args.lm else None
    word_lm = WordLMConfig(order=args.words, oov=args.oov) if args.words else None
    res = evaluate(args.run, args.data, split=args.split, which=args.checkpoint, batch_size=args.batch_size,
                   progress=not args.no_progress, lm=args.lm, decoder=decoder, word_lm=word_lm)
    print(format_table(res))
    print(f"written to {Path(args.run) / 'eval' / (args.split + '.json')}")
    return 0
