"""``toposcope demo``: synthesize, train (topographic + baseline), analyse, report."""

from __future__ import annotations

import sys

HELP = "the whole pipeline on the embedded synthetic corpus, ending in one HTML report"
DESCRIPTION = (
    "Synthesize the default corpus (~3 h), train the `small-asr` topographic model and a λ = 0 baseline, evaluate "
    "both, compute GradNAPs, maps and their statistics (label and position nulls) for both, optimal inputs for the topographic model, and write "
    "DIR/report.html. Each stage is skipped when its outputs exist, so re-running resumes. --quick runs the "
    "same pipeline on a tiny corpus and the `tiny` config in a few minutes."
)


def add_arguments(p) -> None:
    p.add_argument("--out", default="toposcope-demo", metavar="DIR",
                   help="output directory (default: ./toposcope-demo)")
    p.add_argument("--quick", action="store_true",
                   help="40 utterances and the tiny config: a smoke test of every stage in ~3 minutes")
    p.add_argument("--config", default=None, metavar="NAME|FILE",
                   help="config of both models (default: small-asr, the seed's network with a 2-D front end and a "
                        "phone head on conv4; --quick: tiny): a shipped name, e.g. small (the seed's plain 1-D "
                        "network; docs/usage.md), or a TOML file")
    p.add_argument("--train-minutes", type=float, default=None, metavar="M",
                   help="wall-clock cap of each of the two trainings on all threads (default: 6, --quick: 0.5); side "
                        "by side, each gets one thread and twice that")
    p.add_argument("--hours", type=float, default=None, metavar="H",
                   help="hours of synthetic speech (default: 3; --quick: 40 utterances). An existing DIR/corpus "
                        "is reused as it is")
    p.add_argument("--one-after-the-other", action="store_true",
                   help="train the two models one after the other on all threads, --train-minutes each, instead of "
                        "side by side on one thread and twice the minutes each (the full demo's default; the same "
                        "core-minutes, 15-20 %% more steps on 2 cores)")
    p.add_argument("--jobs", type=int, default=None, metavar="N", help="synthesis worker processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (stage lines are still printed)")


def run(args) -> int:
    import dataclasses

    from ..demo import DemoError, plan, run_demo

    p = plan(args.quick)
    if args.config is not None:  # run_demo loads it before writing anything
        p = dataclasses.replace(p, config=args.config)
    if args.train_minutes is not None:
        if args.train_minutes <= 0:
            raise ValueError(f"--train-minutes must be > 0, got {args.train_minutes}")
        p = dataclasses.replace(p, train_minutes=args.train_minutes)
    if args.one_after_the_other:
        p = dataclasses.replace(p, side_by_side=False)
    if args.hours is not None:
        if not args.hours > 0:
            raise ValueError(f"--hours must be > 0, got {args.hours}")
        p = dataclasses.replace(p, hours=args.hours, utterances=None)
    try:
        run_demo(args.out, demo_plan=p, progress=not args.no_progress, jobs=args.jobs)
    except DemoError as e:
        print(f"toposcope demo: error: {e}", file=sys.stderr)
        return 1
    return 0
