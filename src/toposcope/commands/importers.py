"""``toposcope import {timit,textgrid,lab} DIR --out OUT``: real corpora -> native corpus (docs/own-data.md)."""

from __future__ import annotations

import argparse

from ..validation import fraction_arg

HELP = "import a real corpus (TIMIT, TextGrid, Festival .lab, Lhotse, LibriSpeech + MFA) into the native corpus format"
DESCRIPTION = ("Import TIMIT (LDC or NLTK-sample layout, NIST SPHERE audio), wav + Praat TextGrid pairs "
               "(e.g. Montreal Forced Aligner output), Festival/ESPS .lab files, a Lhotse CutSet or LibriSpeech with MFA "
               "TextGrids into OUT/manifest.jsonl "
               "+ OUT/audio (16 kHz mono WAV). Bad input stops the import with an error naming the file, "
               "or with --skip-bad is skipped and listed (also in OUT/skipped.jsonl). All or nothing: OUT "
               "appears only when the import succeeds; an existing non-empty OUT needs --force.")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="DIR", help="source directory")
    p.add_argument("--out", required=True, metavar="OUT", help="corpus directory to write")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip bad utterances and report them (default: stop at the first)")
    p.add_argument("--force", action="store_true",
                   help="replace OUT when it exists and is not empty (atomically, once the import succeeded)")
    p.add_argument("--valid-fraction", type=fraction_arg, default=0.1, metavar="F",
                   help="fraction of speakers held out for validation (default 0.1)")
    p.add_argument("--test-fraction", type=fraction_arg, default=0.1, metavar="F",
                   help="fraction of speakers held out for test where the source has no test split (default 0.1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = sub.add_parser("timit", help="TIMIT: TRAIN/DR1/FCJF0/SA1.WAV|.PHN|.WRD|.TXT or dr1-fvmh0/sa1.wav|.phn ...")
    _common(p)
    p = sub.add_parser("textgrid", help="X.wav + X.TextGrid pairs (any sample rate)")
    _common(p)
    p.add_argument("--tier", metavar="NAME", help="phone tier name (default: phones/phone/phonemes/segments)")
    p.add_argument("--map", metavar="FILE", help="label map, TSV 'source<TAB>canonical' or JSON (IPA/SAMPA -> ARPAbet)")
    p.add_argument("--speaker", metavar="NAME", help="speaker of every utterance (default: its directory)")
    p = sub.add_parser("lab", help="Festival/ESPS X.lab + X.wav + X.txt")
    _common(p)
    p.add_argument("--map", metavar="FILE", help="label map, TSV 'source<TAB>canonical' or JSON")
    p.add_argument("--speaker", metavar="NAME", help="speaker of every utterance (default: its directory)")
    from . import import_formats

    import_formats.add_parsers(sub, _common)


def run(args) -> int:
    from ..importers import import_lab, import_textgrid, import_timit
    from ..importers.common import print_import_result

    kw = dict(skip_bad=args.skip_bad, valid_fraction=args.valid_fraction, test_fraction=args.test_fraction,
              progress=not args.no_progress, force=args.force)
    if args.format == "timit":
        result = import_timit(args.src, args.out, **kw)
    elif args.format == "textgrid":
        result = import_textgrid(args.src, args.out, tier=args.tier, label_map=args.map, speaker=args.speaker, **kw)
    elif args.format == "lab":
        result = import_lab(args.src, args.out, label_map=args.map, speaker=args.speaker, **kw)
    elif args.format in ("lhotse", "librispeech"):
        from . import import_formats

        result = import_formats.run(args, **kw)
    else:  # argparse restricts the choices
        raise ValueError(f"unknown import format {args.format!r}")
    print_import_result(result)
    return 0
