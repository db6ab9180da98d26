"""``toposcope layout``: a post-hoc grid for any layer of a trained run (``docs/layouts.md``)."""

from __future__ import annotations

HELP = "place a layer's units on a grid after training (SOM or embedding + assignment) -> RUN/layouts/"
DESCRIPTION = (
    "Fits a layout (a permutation unit -> grid cell) from the units' response profiles on the fitting "
    "split (default train): per-unit GradNAP vectors over phones (--features gradnap) or rows of the "
    "activation correlation matrix (--features activations), placed by a self-organizing map (--method "
    "som) or a 2D embedding (--method assign: Isomap, or PCA with --embedding pca), each followed by an "
    "exact one-unit-per-cell assignment. Writes RUN/layouts/<LAYER>-<METHOD>.json. The profile "
    "RUN/profiles/gradnap-phone-<SPLIT>.npz is computed first when missing (needs --data). Judge the "
    "layout on another split (`toposcope maps RUN --layout METHOD`): on its fitting split maps are smooth "
    "by construction."
)


def add_arguments(p) -> None:
    from ..analysis.layouts import EMBEDDINGS, FEATURES, METHODS

    p.add_argument("run", metavar="RUN", help="run directory written by `toposcope train`")
    p.add_argument("--layer", default="all", metavar="L", help="layer name, or `all` (default)")
    p.add_argument("--method", default="som", choices=METHODS, help="som (default) or assign (embedding)")
    p.add_argument("--features", default="gradnap", choices=FEATURES,
                   help="unit features: GradNAP over phones (default) or activation correlations")
    p.add_argument("--fit-split", default="train", choices=("train", "valid", "test", "all"),
                   help="corpus split the layout is fitted on (default train)")
    p.add_argument("--data", default=None, metavar="DIR", help="corpus directory (needed when the profile is missing)")
    p.add_argument("--grid", default=None, metavar="RxC", help="grid for a single layer, e.g. 32x8 (default: most square)")
    p.add_argument("--embedding", default="isomap", choices=EMBEDDINGS, help="embedding of --method assign")
    p.add_argument("--seed", type=int, default=0, help="seed of the SOM's sample order")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-utterances", type=int, default=0, help="profile only the first N utterances (0: all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")


def parse_grid(text):
    """``"32x8"`` -> ``(32, 8)`` (``None`` stays ``None``)."""
    if text is None:
        return None
    try:
        r, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--grid must look like ROWSxCOLS (e.g. 16x16), got {text!r}") from None
    return (r, c)


def run(args) -> int:
    from ..analysis.layouts import layout_path, layout_run

    out = layout_run(args.run, args.data, layer=args.layer, method=args.method, features=args.features,
                     fit_split=args.fit_split, seed=args.seed, checkpoint=args.checkpoint,
                     grid=parse_grid(args.grid), embedding=args.embedding, batch_size=args.batch_size,
                     max_utterances=args.max_utterances, device=args.device, progress=not args.no_progress)
    for n, lay in out.items():
        t = lay.quality.get("trustworthiness")
        tw = f", trustworthiness {t:.3f}" if t is not None else ""
        print(f"{n}: {lay.units} units on {lay.grid} ({lay.method}, {lay.features}, fitted on {lay.fit_split}{tw}) "
              f"-> {layout_path(args.run, n, lay.method)}")
    return 0
