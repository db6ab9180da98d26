"""``toposcope optimize``: optimal inputs for the most responsive regions of a run (docs/method.md § Optimal inputs)."""

from __future__ import annotations

HELP = "optimal inputs (single-filter + joint) for each phone's most responsive region -> RUN/optimal/"
DESCRIPTION = (
    "For each chosen phone (default: the three with the most distinct GradNAP maps) and each layer, "
    "optimise a log-mel input (about 0.5 s) for each filter of the phone's 3x3 region from "
    "RUN/maps/regions.json and one for the whole region. Default: natural inputs (every bin inside its mel "
    "band's 0.5-99.5 percentile of real log-mel; a 1/f^2 Fourier parameterisation, time jitter, total "
    "variation and L2 decay); --unconstrained: the pixel-space optimum (clipping to the data's min/max, "
    "periodic blur). Writes .npy inputs, region.png, WAV audio (mel inversion + Griffin-Lim) "
    "and summary.json (activation, naturalness, data_max_window, data_max_frame, n_utterances_searched) under "
    "RUN/optimal/<layer>/<group>/. Checks that every input drives its target above the best real window of "
    "its length (data_max_window); exits with status 1 if one does not."
)


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="run directory (trained, with maps/regions.json)")
    p.add_argument("--layer", dest="layers", action="append", default=None, metavar="L",
                   help="layer to optimise (repeatable; default: every layer with regions)")
    p.add_argument("--group", dest="groups", nargs="+", action="extend", default=None, metavar="G",
                   help="phone(s)/group(s) (default: the --n-groups most distinct maps)")
    p.add_argument("--n-groups", type=int, default=3, help="how many groups to choose by default (3)")
    p.add_argument("--steps", type=int, default=200, help="optimisation steps per round (200)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate on the input (0.05)")
    p.add_argument("--l2", type=float, default=0.01, help="L2 decay weight (0.01)")
    p.add_argument("--unconstrained", action="store_true",
                   help="pixel-space optimum clipped to the data's min/max (the earlier default)")
    p.add_argument("--decay", type=float, default=2.0, help="natural: 1/f^DECAY spectrum of the input (2)")
    p.add_argument("--tv", type=float, default=None, help="total-variation weight (natural 0.2, unconstrained 0)")
    p.add_argument("--blur-every", type=int, default=4,
                   help="unconstrained: blur the input every N steps (4; 0: never)")
    p.add_argument("--blur-sigma", type=float, default=0.5, help="unconstrained: blur std in bins and frames (0.5)")
    p.add_argument("--jitter", type=int, default=2, help="max random time shift in frames (2)")
    p.add_argument("--seconds", type=float, default=0.5, help="input length in seconds of valid frames (0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retries", type=int, default=2,
                   help="extra rounds for targets still below the data maximum (2)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="corpus for the data maximum and data range (default: the profiles' corpus)")
    p.add_argument("--split", default="train", choices=("train", "valid", "test", "all"))
    p.add_argument("--max-utterances", type=int, default=200, help="utterances scanned for the data maximum (200)")
    p.add_argument("--profiles", default="gradnap-phone", help="profiles name used to choose groups")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--layout", default=None, metavar="METHOD",
                   help="regions of a post-hoc layout (RUN/maps-METHOD, `toposcope layout`) -> RUN/optimal-METHOD/")
    p.add_argument("--no-audio", action="store_true", help="skip the WAV files")
    p.add_argument("--no-images", action="store_true", help="skip region.png")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import sys

    from ..optimize.render import OptimizeConfig
    from ..optimize.run import optimize_run

    kw = dict(steps=args.steps, lr=args.lr, l2=args.l2, blur_every=args.blur_every, blur_sigma_mel=args.blur_sigma,
              blur_sigma_time=args.blur_sigma, jitter=args.jitter, seed=args.seed, decay=args.decay)
    if args.tv is not None:
        kw["tv"] = args.tv
    cfg = OptimizeConfig.unconstrained(**kw) if args.unconstrained else OptimizeConfig(**kw)
    s = optimize_run(args.run, layers=args.layers, groups=args.groups, data=args.data, split=args.split,
                     max_utterances=args.max_utterances, n_groups=args.n_groups, seconds=args.seconds, config=cfg,
                     retries=args.retries, profiles=args.profiles, checkpoint=args.checkpoint,
                     images=not args.no_images, audio=not args.no_audio, progress=not args.no_progress,
                     layout=args.layout)
    print(f"groups: {', '.join(s['groups'])} ({s['group_choice']})")
    for r in s["regions"]:
        print(f"{r['layer']}/{r['group']}: region {tuple(r['center'])}, joint {r['joint_activation']:.3g} "
              f"(best real window {r['joint_data_max'] or float('nan'):.3g}), lowest activation/data-max ratio "
              f"{r['min_ratio']:.2f}, lowest naturalness {r['min_naturalness']:.3f}, {r['seconds']:.1f} s, "
              f"{'ok' if r['all_exceed'] else 'BELOW DATA MAXIMUM'} -> {r['path']}")
    print(f"{s['parameterization']} inputs: {100 * s['share_exceeds']:.0f} % above the best real window, "
          f"{100 * s['share_natural_and_exceeds']:.0f} % also natural (>= {s['natural_target']:.2f} of bins in range); "
          f"data maxima over {s['n_utterances_searched']} utterances")
    if not s["all_exceed"]:
        print(f"toposcope optimize: {len(s['failures'])} optimised input(s) did not exceed the largest activation "
              f"seen on real data: {', '.join(s['failures'])} (try --steps, --lr or a smaller --l2)", file=sys.stderr)
        return 1
    return 0
