"""``toposcope maps``: topographic maps, most responsive regions and topography statistics (docs/method.md § Maps and regions)."""

from __future__ import annotations

HELP = "draw profile maps, find the most responsive 3x3 regions, test clustering -> RUN/maps/"
DESCRIPTION = (
    "From RUN/profiles/<name>.npz: per layer and group an on-grid and a smoothed (3x3 mean) map with "
    "the most responsive region outlined (RUN/maps/<layer>/<group>.png), an overview per layer, "
    "RUN/maps/regions.json and RUN/maps/stats.json, printed as a table (docs/statistics.md). Phone-specific "
    "organization first: each phone's Moran's I against a label null (phone labels permuted among the "
    "segments within speaker, sil fixed; p_label, BH q_label, share of phone-specific maps), Mantel r of "
    "map dissimilarity against phonetic-feature distance, region separation. Then layer and map "
    "smoothness against shuffled positions (with the run's neighbourhood and boundary): functional S̄ of "
    "activation correlations, weight S̄ (and BatchNorm-folded S̄), Moran's I per map ('map smoothness'). "
    "The model is the checkpoint the profile was computed from. --baseline RUN2 (e.g. a λ = 0 run) "
    "computes the same for RUN2 and prints both side by side."
)


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="run directory with profiles/ (from `toposcope profile`)")
    p.add_argument("--profiles", default=DEFAULT_PROFILES, metavar="NAME", help="profiles/<NAME>.npz to draw")
    p.add_argument("--baseline", default=None, metavar="RUN2",
                   help="a second run (e.g. topo_weight = 0) with the same profiles, shown side by side")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default RUN/maps for gradnap-phone, else RUN/maps-<NAME>; "
                        "-<METHOD> appended under --layout)")
    p.add_argument("--interpolate", action="store_true", help="EEG-style interpolated smoothed panel")
    p.add_argument("--no-plots", action="store_true", help="only regions.json and stats.json")
    p.add_argument("--permutations", type=int, default=999,
                   help="position shuffles for the smoothness p-values (>= 200)")
    p.add_argument("--label-permutations", type=int, default=999, metavar="N",
                   help="label permutations for the phone-specific tests (>= 99; 0: leave them out)")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutations")
    p.add_argument("--layout", default=None, metavar="METHOD",
                   help="draw and test the maps under the post-hoc layout RUN/layouts/<layer>-METHOD.json")
    p.add_argument("--allow-fit-split", action="store_true",
                   help="allow a layout fitted on the profile's own split (outputs say 'judged on the fitting split')")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--adjacency", default="queen", choices=("queen", "rook"))
    p.add_argument("--threshold-sd", type=float, default=1.0, help="region threshold: mean + K sd of the map")
    p.add_argument("--checkpoint", default=None, choices=("best", "last"),
                   help="expected checkpoint (default: the one the profile was computed from; must agree)")
    p.add_argument("--dpi", type=int, default=100)
    p.add_argument("--no-progress", action="store_true")


DEFAULT_PROFILES = "gradnap-phone"


def _maps(run_dir, args, *, plots: bool, out=None) -> dict:
    from ..analysis.maps import maps_run

    return maps_run(run_dir, profile=args.profiles, layout=args.layout, allow_fit_split=args.allow_fit_split,
                    n_permutations=args.permutations, label_permutations=args.label_permutations, alpha=args.alpha,
                    adjacency=args.adjacency, threshold_sd=args.threshold_sd, seed=args.seed, plots=plots,
                    interpolate=args.interpolate, out=out, progress=not args.no_progress,
                    checkpoint=args.checkpoint, dpi=args.dpi)


def run(args) -> int:
    from pathlib import Path

    from ..analysis.maps import maps_dir
    from ..analysis.stats import format_table

    st = _maps(args.run, args, plots=not args.no_plots, out=args.out)
    base = _maps(args.baseline, args, plots=False) if args.baseline else None
    print(format_table(st, base, names=(Path(args.run).name, Path(args.baseline).name if args.baseline else "")))
    for name, s in ((Path(args.run).name, st), (Path(args.baseline).name if args.baseline else "", base)):
        for note in (s or {}).get("notes") or ():
            print(f"note ({name}): {note}")
    where = args.out or maps_dir(args.run, args.profiles, args.layout)
    print(f"written to {where}" + (f" and {maps_dir(args.baseline, args.profiles, args.layout) / 'stats.json'}"
                                   if args.baseline else ""))
    return 0
