"""``toposcope filters``: close-ups of first-layer filter neighbourhoods and neighbour-similarity maps (Fig. 1A)."""

from __future__ import annotations

HELP = "filter close-ups (n x n neighbourhoods) and per-filter neighbour similarity maps -> RUN/filters/"
DESCRIPTION = (
    "Draws two (or --count) n x n neighbourhoods of a layer's filters (default the first layer: each filter "
    "an image of mel x kernel time) in their grid positions, as in the seed's Figure 1A, and for every "
    "layer a map of each filter's weighted cosine similarity to its grid neighbours (S_p, docs/method.md § Regularizer). "
    "Writes RUN/filters/closeup_<layer>.png, similarity.png, similarity.npz and summary.json."
)


def _center(text: str):
    try:
        r, c = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--center must be ROW,COL (e.g. 4,7), got {text!r}") from None
    return r, c


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="run directory")
    p.add_argument("--layer", default=None, metavar="L", help="layer for the close-ups (default: the first)")
    p.add_argument("-n", "--size", type=int, default=3, help="neighbourhood size n (odd, default 3)")
    p.add_argument("--count", type=int, default=2, help="how many neighbourhoods (default 2)")
    p.add_argument("--mode", default="top", choices=("top", "contrast"),
                   help="which blocks: most coherent (top) or most and least coherent (contrast)")
    p.add_argument("--center", action="append", default=None, metavar="ROW,COL",
                   help="explicit block centre (repeatable; overrides --mode/--count)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))


def run(args) -> int:
    from pathlib import Path

    from ..analysis.filters import write_filters

    centers = [_center(c) for c in args.center] if args.center else None
    s = write_filters(args.run, layer=args.layer, n=args.size, count=args.count, centers=centers, mode=args.mode,
                      checkpoint=args.checkpoint)
    for h in s["neighborhoods"]:
        print(f"{s['layer']} block at {tuple(h['center'])}: mean S_p {h['mean_similarity']:.3f}")
    print("mean S_p per layer: " + ", ".join(f"{l} {v:.3f}" for l, v in s["mean_similarity"].items()))
    print(f"wrote {Path(s['run']) / 'filters'}")
    return 0
