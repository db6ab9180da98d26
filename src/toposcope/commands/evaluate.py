"""``toposcope evaluate``: CER/WER of a trained run per split and per speaker."""

from __future__ import annotations

HELP = "CER and WER of a trained run on a corpus split, per speaker (JSON + table)"
DESCRIPTION = ("Greedy-decode a split of a corpus with a trained run, print CER/WER per speaker and in total, "
               "and write RUN/eval/<split>.json.")


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="run directory written by `toposcope train`")
    p.add_argument("--data", required=True, metavar="DIR", help="corpus directory")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from pathlib import Path

    from ..evaluate import evaluate, format_table

    res = evaluate(args.run, args.data, split=args.split, which=args.checkpoint, batch_size=args.batch_size,
                   progress=not args.no_progress)
    print(format_table(res))
    print(f"written to {Path(args.run) / 'eval' / (args.split + '.json')}")
    return 0
