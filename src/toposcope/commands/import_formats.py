"""``toposcope import lhotse`` and ``toposcope import librispeech`` (wired into ``commands/importers.py``)."""

from __future__ import annotations

import argparse


def add_parsers(sub, common) -> None:
    """Add the ``lhotse`` and ``librispeech`` subparsers; ``common(p)`` adds the shared import options."""
    p = sub.add_parser("lhotse", help="a Lhotse CutSet (cuts.jsonl.gz) or --recordings + --supervisions manifests "
                                      "with phone alignments in supervision.alignment['phone']")
    common(p)
    for action in p._actions:  # the positional is the CutSet, optional when --recordings/--supervisions are given
        if action.dest == "src":
            action.nargs, action.metavar, action.default = "?", "CUTS", None
            action.help = "Lhotse CutSet manifest (cuts.jsonl.gz / .jsonl / .json)"
    p.add_argument("--recordings", metavar="FILE", help="Lhotse RecordingSet manifest (with --supervisions)")
    p.add_argument("--supervisions", metavar="FILE", help="Lhotse SupervisionSet manifest (with --recordings)")
    p.add_argument("--map", metavar="FILE", help="label map, TSV 'source<TAB>canonical' or JSON")
    p.add_argument("--phone-key", default="phone", metavar="KEY", help="alignment key of the phones (default phone)")
    p = sub.add_parser("librispeech", help="LibriSpeech ROOT (<subset>/<spk>/<chapter>/*.flac + *.trans.txt) with "
                                           "Montreal Forced Aligner TextGrids in --alignments DIR")
    common(p)
    p.add_argument("--alignments", required=True, metavar="DIR",
                   help="MFA output: <speaker>/<chapter>/<spk>-<chap>-<utt>.TextGrid (tiers words, phones)")
    p.add_argument("--subsets", metavar="NAMES", help="comma-separated subsets to import (default: all found)")


def run(args, **kw):
    """Call the importer for ``args.format``; returns its :class:`~toposcope.importers.common.ImportResult`."""
    if args.format == "lhotse":
        from ..importers.lhotse import import_lhotse

        return import_lhotse(args.src, args.out, recordings=args.recordings, supervisions=args.supervisions,
                             label_map=args.map, phone_key=args.phone_key, **kw)
    from ..importers.librispeech import import_librispeech

    subsets = [s.strip() for s in args.subsets.split(",") if s.strip()] if args.subsets else None
    return import_librispeech(args.src, args.out, alignments=args.alignments, subsets=subsets, **kw)
