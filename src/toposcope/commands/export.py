"""``toposcope export lhotse CORPUS --out DIR``: a corpus as a Lhotse CutSet with phone alignments."""

from __future__ import annotations

import argparse

HELP = "export a corpus to another format (Lhotse CutSet with phone and word alignments)"
DESCRIPTION = ("Write CORPUS as a Lhotse CutSet (DIR/cuts.jsonl.gz, plus recordings.jsonl.gz and "
               "supervisions.jsonl.gz): one cut per utterance over its audio file (referenced, not copied), "
               "phones and words in supervision.alignment['phone'|'word']. `toposcope import lhotse` reads it back.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = sub.add_parser("lhotse", help="Lhotse CutSet (needs the optional dependency: toposcope[lhotse])")
    p.add_argument("corpus", metavar="CORPUS", help="corpus directory (manifest.jsonl + audio/)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the manifests")
    p.add_argument("--split", choices=("train", "valid", "test"), help="export only this split")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..importers.lhotse import export_lhotse

    paths = export_lhotse(args.corpus, args.out, split=args.split, progress_bar=not args.no_progress)
    print(f"wrote {paths['cuts']} (+ {paths['recordings'].name}, {paths['supervisions'].name})")
    return 0
