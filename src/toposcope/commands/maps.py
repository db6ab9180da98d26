"""``toposcope maps``: topographic maps, most responsive regions and topography statistics (SPEC §6)."""

from __future__ import annotations

HELP = "draw profile maps, find the most responsive 3x3 regions, test clustering -> RUN/maps/"
DESCRIPTION = (
    "From RUN/profiles/<name>.npz: per layer and group an on-grid and a smoothed (3x3 mean) map with "
    "the most responsive region outlined (RUN/maps/<layer>/<group>.png), an overview per layer, "
    "RUN/maps/regions.json and RUN/maps/stats.json (S̄ vs a permutation null, Moran's I per map with "
    "its permutation p-value, connected regions above mean + 1 sd, share of clustered maps), printed "
    "as a table. --baseline RUN2 (e.g. a λ = 0 run) computes the same for RUN2 and prints both side by side."
)


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="run directory with profiles/ (from `toposcope profile`)")
    p.add_argument("--profiles", default=DEFAULT_PROFILES, metavar="NAME", help="profiles/<NAME>.npz to draw")
    p.add_argument("--baseline", default=None, metavar="RUN2",
                   help="a second run (e.g. topo_weight = 0) with the same profiles, shown side by side")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default RUN/maps for gradnap-phone, else RUN/maps-<NAME>)")
    p.add_argument("--interpolate", action="store_true", help="EEG-style interpolated smoothed panel")
    p.add_argument("--no-plots", action="store_true", help="only regions.json and stats.json")
    p.add_argument("--permutations", type=int, default=999, help="permutations for the p-values (>= 200)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--adjacency", default="queen", choices=("queen", "rook"))
    p.add_argument("--threshold-sd", type=float, default=1.0, help="region threshold: mean + K sd of the map")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--dpi", type=int, default=100)
    p.add_argument("--no-progress", action="store_true")


DEFAULT_PROFILES = "gradnap-phone"


def out_dir(run_dir, args):
    """``RUN/maps`` for the default profiles (the contract), ``RUN/maps-<name>`` for others."""
    from pathlib import Path

    if args.out and Path(run_dir) == Path(args.run):
        return Path(args.out)
    return Path(run_dir) / ("maps" if args.profiles == DEFAULT_PROFILES else f"maps-{args.profiles}")


def _stats_for(run_dir, args):
    import json
    from pathlib import Path

    from ..checkpoint import load_run
    from ..analysis.profiles import load_profiles
    from .._util import write_json_atomic
    from ..analysis.stats import compute_stats

    prof = load_profiles(Path(run_dir) / "profiles" / f"{args.profiles}.npz")
    try:
        model = load_run(run_dir, args.checkpoint).model
        weights = {n: model.weight(n).detach() for n in prof.layers}
    except FileNotFoundError:
        weights = None  # profiles without a checkpoint: no S̄
    st = compute_stats(prof, weights, n_permutations=args.permutations, alpha=args.alpha, adjacency=args.adjacency,
                       threshold_sd=args.threshold_sd, progress=not args.no_progress)
    st["run"] = str(run_dir)
    out = out_dir(run_dir, args) / "stats.json"
    write_json_atomic(out, st)
    return prof, st


def run(args) -> int:
    from pathlib import Path

    from ..analysis.maps import write_maps
    from ..analysis.stats import format_table

    prof, st = _stats_for(args.run, args)
    write_maps(prof, out_dir(args.run, args), interpolate=args.interpolate, plots=not args.no_plots,
               dpi=args.dpi, progress=not args.no_progress)
    base = None
    if args.baseline:
        _, base = _stats_for(args.baseline, args)
    print(format_table(st, base, names=(Path(args.run).name, Path(args.baseline).name if args.baseline else "")))
    print(f"written to {out_dir(args.run, args)}" + (f" and {out_dir(args.baseline, args) / 'stats.json'}"
                                                     if args.baseline else ""))
    return 0
