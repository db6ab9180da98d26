"""``toposcope lm``: fit a character n-gram language model for beam-search decoding (docs/decoding.md)."""

from __future__ import annotations

from ..validation import count_arg

HELP = "fit a character n-gram language model for `evaluate --lm` (never on the valid/test sentences)"
DESCRIPTION = (
    "Fit an interpolated Kneser-Ney character n-gram model on a corpus's train transcripts, optional text files "
    "(one sentence per line) and, with --fortunes, the sentence pool of the synthetic corpus. The corpus's valid "
    "and test sentences, and every sentence sharing a 5-word sequence with one, are always left out. Prints "
    "the per-character perplexity on valid and test and writes the model (its text plus settings) as JSON."
)


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, metavar="DIR", help="corpus directory (its valid/test are excluded)")
    p.add_argument("--out", required=True, metavar="FILE", help="language model file to write (JSON)")
    p.add_argument("--text", action="append", default=[], metavar="FILE",
                   help="extra text, one sentence per line (repeatable)")
    p.add_argument("--fortunes", action="store_true",
                   help="add the fortune sentences the synthetic corpus is drawn from (needs fortunes-min/fortunes)")
    p.add_argument("--no-train", action="store_true", help="leave out the corpus's own train transcripts")
    p.add_argument("--order", type=count_arg(1), default=8, metavar="N", help="n-gram order (default 8)")
    p.add_argument("--discount", type=float, default=0.75, metavar="D", help="Kneser-Ney discount (default 0.75)")


def run(args) -> int:
    from pathlib import Path

    from ..corpus import Corpus
    from ..lm import LMConfig, lm_for_corpus
    from ..text import normalize_text
    from ..wordlm import lexicon as word_lexicon

    extra = []
    for f in args.text:
        try:
            extra.extend(Path(f).read_text(encoding="utf-8", errors="replace").splitlines())
        except FileNotFoundError:
            raise FileNotFoundError(f"{f}: text file not found") from None
    corpus = Corpus.load(args.data, alignments=False)
    lm = lm_for_corpus(corpus, extra=extra, fortunes=args.fortunes, use_train=not args.no_train,
                       config=LMConfig(order=args.order, discount=args.discount))
    m = lm.meta
    print(f"{len(lm.texts)} sentences ({', '.join(m['sources'])}): train {m['train']}, other {m['extra']}; "
          f"left out as valid/test sentences {m['dropped_exact']}, as near duplicates {m['dropped_ngram']}")
    lexicon = word_lexicon(lm.texts)
    print(f"  lexicon (the word LM's words, `evaluate --words`): {len(lexicon)} words")
    for split in ("valid", "test"):
        refs = [normalize_text(u.text) for u in corpus.split(split)]
        if refs:
            words = [w for r in refs for w in r.split()]
            oov = sum(w not in lexicon for w in words) / max(1, len(words))
            print(f"  perplexity per character on {split}: {lm.perplexity(refs):.2f}; "
                  f"{100 * oov:.1f} % of its words are outside the lexicon")
    print(f"wrote {lm.save(args.out)}")
    return 0
