"""``toposcope train``: train a topographic Wav2Letter on a corpus directory."""

from __future__ import annotations

import argparse
import sys

HELP = "train a topographic speech recognizer (CTC + λ · topographic term)"
DESCRIPTION = (
    "Train a Wav2Letter-style model on the train split of a corpus directory, validate on its valid split "
    "after every epoch, and write RUN/config.toml, RUN/checkpoints/{last,best}.pt and RUN/metrics.jsonl. "
    "Multi-process: torchrun --nproc-per-node N -m toposcope train ... (DDP; gloo on CPU, nccl on GPU). "
    "Ctrl-C saves and exits; --resume continues exactly."
)


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, metavar="DIR", help="corpus directory (manifest.jsonl + audio/)")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to create (or to resume)")
    p.add_argument("--config", default=None, metavar="NAME|FILE",
                   help="shipped config (tiny, small, paper) or a TOML file; default: small, or the run's own "
                        "config with --resume")
    p.add_argument("--topo-weight", type=float, default=None, metavar="λ", help="weight of the topographic term")
    p.add_argument("--epochs", type=int, default=None, metavar="N")
    p.add_argument("--max-steps", type=int, default=None, metavar="N", help="stop after N optimizer steps")
    p.add_argument("--max-minutes", type=float, default=None, metavar="M",
                   help="wall-clock budget of the training loop (the LR schedule ends with it)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="turn the config's [augment] table on or off (default: as the config says; in the shipped "
                        "configs only small's is on, with VTLP alone)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..train import NonFiniteLossError, train

    try:
        res = train(args.data, args.out, config=args.config, topo_weight=args.topo_weight, epochs=args.epochs,
                    max_steps=args.max_steps, max_minutes=args.max_minutes, resume=args.resume, seed=args.seed,
                    augment=args.augment, progress=not args.no_progress, device=args.device)
    except NonFiniteLossError as e:
        print(f"toposcope train: error: {e}", file=sys.stderr)
        return 1
    if res.get("stopped") == "interrupted":
        return 130
    return 0
