"""``toposcope profile``: NAPs / GradNAPs of every gridded layer of a run (``docs/method.md`` § Profiles).

Argument parsing and printing only: :func:`toposcope.analysis.profiles.profile_run` does the work."""

from __future__ import annotations

HELP = "per-phone (or per-grapheme) NAPs/GradNAPs of every gridded layer -> RUN/profiles/<name>.npz"
DESCRIPTION = (
    "One pass over a corpus split (forward + one backward to the activations): the mean adjusted "
    "activation of every filter over the frames of each group, minus the mean over groups. "
    "Writes RUN/profiles/<method>-<grouping>.npz (or --name). The default split is `test` (held-out "
    "data: how the model responds to speech it was not fitted to); when the corpus has no test "
    "utterances, `valid`, then `train`, is used and said so. `--split all` uses every utterance."
)


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="run directory written by `toposcope train`")
    p.add_argument("--data", required=True, metavar="DIR", help="corpus directory (manifest.jsonl + audio/)")
    p.add_argument("--split", default=None, choices=("train", "valid", "test", "all"),
                   help="corpus split (default: test, else valid, else train)")
    p.add_argument("--method", default="gradnap", choices=("gradnap", "nap", "absgrad"),
                   help="adjusted activation: gradnap A*G (default), nap A, absgrad |G|*A")
    p.add_argument("--group", default="phone", choices=("phone", "predicted"),
                   help="frame groups: aligned phone (default) or the model's argmax grapheme")
    p.add_argument("--target", default="predicted", choices=("predicted", "ctc"),
                   help="score backpropagated for G: sum log p(argmax) (default) or the CTC log-likelihood")
    p.add_argument("--baseline", default="uniform", choices=("uniform", "frames"),
                   help="baseline: mean over groups (default) or frame-count weighted")
    p.add_argument("--epochs", type=int, default=0, metavar="K",
                   help="ERP epochs (+-K frames): average the 2K+1 layer frames around each segment centre "
                        "(0: off; not training epochs)")
    p.add_argument("--layers", nargs="+", default=None, metavar="LAYER", help="only these layers")
    p.add_argument("--name", default=None, help="output name (default <method>-<grouping>)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-utterances", type=int, default=0, help="use only the first N utterances (0: all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-segments", action="store_true",
                   help="leave out the per-segment sums (S x C per layer, 8 bytes each: gigabytes on a large split); "
                        "`maps` then has no label null from this file")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import sys

    from ..analysis.profiles import profile_path, profile_run

    prof = profile_run(args.run, args.data, split=args.split, checkpoint=args.checkpoint, method=args.method,
                       grouping=args.group, target=args.target, baseline=args.baseline, epochs=args.epochs,
                       layers=args.layers, batch_size=args.batch_size, max_utterances=args.max_utterances,
                       name=args.name, device=args.device, progress=not args.no_progress,
                       keep_segments=not args.no_segments)
    split = prof.meta["split"]
    if args.split is None and split != "test":
        print(f"note: {prof.meta['corpus']} has no test utterances; profiled the {split} split instead", file=sys.stderr)
    unit = "segments" if args.epochs else "frames"
    layers = ", ".join(f"{n} ({lp.grid}, {int(lp.counts.sum())} {unit})" for n, lp in prof.layers.items())
    print(f"{prof.meta['n_utterances']} utterances ({split}), {len(prof.groups)} groups; layers {layers}")
    if prof.meta.get("dropped_groups"):
        print(f"dropped (not seen at every layer): {', '.join(prof.meta['dropped_groups'])}")
    print(f"written to {profile_path(args.run, args.name or prof.name)}")
    return 0
