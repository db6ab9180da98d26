"""``toposcope align --audio DIR --transcripts FILE --out OUT``: forced alignment with pocketsphinx (docs/own-data.md)."""

from __future__ import annotations

from ..validation import fraction_arg

HELP = "force-align own audio + transcripts with pocketsphinx into a native corpus"
DESCRIPTION = ("Align DIR/<id>.wav with the transcripts in FILE ('id<TAB>text[<TAB>speaker]' lines or JSONL "
               "with id, text, speaker?, audio?) using pocketsphinx's en-us model and dictionary. Utterances "
               "with out-of-vocabulary words are listed and skipped (also in OUT/skipped.jsonl).")


def add_arguments(parser) -> None:
    parser.add_argument("--audio", required=True, metavar="DIR", help="directory holding <id>.wav")
    parser.add_argument("--transcripts", required=True, metavar="FILE", help="TSV 'id<TAB>text' or JSONL")
    parser.add_argument("--out", required=True, metavar="OUT", help="corpus directory to write")
    parser.add_argument("--speaker", metavar="NAME", help="speaker where FILE gives none (default: DIR's name)")
    parser.add_argument("--dict", metavar="FILE", help="pronunciation dictionary (default: pocketsphinx's cmudict)")
    parser.add_argument("--skip-bad", action="store_true", help="skip bad utterances and report them")
    parser.add_argument("--valid-fraction", type=fraction_arg, default=0.1, metavar="F")
    parser.add_argument("--test-fraction", type=fraction_arg, default=0.1, metavar="F")
    parser.add_argument("--force", action="store_true",
                        help="replace OUT when it exists and is not empty (atomically, once the alignment succeeded)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..importers.align import align_corpus
    from ..importers.common import print_import_result

    result = align_corpus(args.audio, args.transcripts, args.out, speaker=args.speaker, skip_bad=args.skip_bad,
                          valid_fraction=args.valid_fraction, test_fraction=args.test_fraction,
                          dictionary=args.dict, progress=not args.no_progress, force=args.force)
    print_import_result(result)
    return 0
