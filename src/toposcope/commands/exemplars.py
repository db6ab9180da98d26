"""``toposcope exemplars``: the real windows each mapped region responds to most (docs/optimal-inputs.md)."""

from __future__ import annotations

HELP = "top-k real windows per region filter and per region (joint) over a split -> RUN/exemplars/"
DESCRIPTION = (
    "One streaming pass over a corpus split: for every region of RUN/maps/regions.json (or the given "
    "--layer/--group), the k windows of real speech with the largest mean activation of each region filter "
    "and of the whole region (the optimal inputs' objective and window length). Writes "
    "RUN/exemplars/<layer>/<group>.json (per target: exemplars {utt, start, end, value, phones}, best first, "
    "data_max_window, data_max_frame, phone histogram) and, per region, spectrogram crops (crops.npz), WAV "
    "snippets cut from the recordings and exemplars.png."
)


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="run directory (trained, with maps/regions.json)")
    p.add_argument("--layer", dest="layers", action="append", default=None, metavar="L",
                   help="layer (repeatable; default: every layer with regions)")
    p.add_argument("--group", dest="groups", nargs="+", action="extend", default=None, metavar="G",
                   help="phone(s)/group(s) (default: every region of the layer)")
    p.add_argument("-k", type=int, default=8, help="exemplars per target (8)")
    p.add_argument("--seconds", type=float, default=0.5,
                   help="window length in seconds of valid frames, as for `optimize` (0.5)")
    p.add_argument("--allow-overlap", action="store_true",
                   help="let one target's windows overlap within an utterance (default: distinct events)")
    p.add_argument("--data", default=None, metavar="DIR", help="corpus (default: the profiles' corpus)")
    p.add_argument("--split", default=None, choices=("train", "valid", "test", "all"),
                   help="split searched (default: the profiles' split, else test, valid, train)")
    p.add_argument("--max-utterances", type=int, default=0, help="0: the whole split (default)")
    p.add_argument("--media", default="joint", choices=("joint", "all", "none"),
                   help="crops, WAV snippets and a figure for the joint exemplars (default), all targets, or none")
    p.add_argument("--maps", default="maps", help="maps folder whose regions.json to read (maps; maps-<layout>)")
    p.add_argument("--profiles", default="gradnap-phone", help="profiles file that records corpus and split")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from ..analysis.exemplars import ExemplarConfig, exemplars_run

    cfg = ExemplarConfig(k=args.k, seconds=args.seconds, batch_size=args.batch_size, allow_overlap=args.allow_overlap)
    s = exemplars_run(args.run, data=args.data, split=args.split, layers=args.layers, groups=args.groups, config=cfg,
                      checkpoint=args.checkpoint, maps=args.maps, profiles=args.profiles, media=args.media,
                      max_utterances=args.max_utterances, progress=not args.no_progress)
    print(f"searched {s['n_utterances_searched']} utterances of {s['split']} in {s['search_seconds']:.1f} s")
    for r in s["regions"]:
        v = r["joint_data_max_window"]
        print(f"{r['layer']}/{r['group']}: {r['joint_exemplars']} joint exemplars, best window "
              f"{'none' if v is None else f'{v:.3g}'}, most covered phone: {r['joint_top_phone'] or '-'} -> {r['path']}")
    return 0
