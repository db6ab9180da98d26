"""Training throughput: seconds of audio per second of wall clock, one full training step.

A step is what ``toposcope.train`` does per batch: forward, CTC, the topographic regularizer
(λ·Σ L over every gridded layer), backward, gradient clipping, Adam. Inputs are random log-mel
features (``--batch`` utterances of ``--seconds`` s each) with random grapheme targets of
``--chars-per-second`` characters per second, so the number does not depend on a corpus.

    .venv/bin/python benchmarks/bench_train.py                    # paper config, 16 x 3 s, regularizer on
    .venv/bin/python benchmarks/bench_train.py --no-regularizer   # the bare network
    .venv/bin/python benchmarks/bench_train.py --config small --json out.json

Target (issue 4): paper config >= 30x real time on the 2-core CPU (the bare network ~38x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="paper")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--chars-per-second", type=float, default=12.0)
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--topo-weight", type=float, default=None, help="λ (default: the config's, or 0.01)")
    ap.add_argument("--no-regularizer", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args(argv)

    from toposcope.config import load_config
    from toposcope.model import Wav2Letter
    from toposcope.text import N_CLASSES
    from toposcope.topography import TopographicRegularizer
    from toposcope.train import ctc_loss_sum

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.config)
    fc = cfg.model.features
    model = Wav2Letter(cfg.model).train()
    lam = args.topo_weight if args.topo_weight is not None else (cfg.train.topo_weight or 0.01)
    reg = None if args.no_regularizer else TopographicRegularizer(model, weight=lam,
                                                                  neighborhood=cfg.train.neighborhood)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    frames = int(args.seconds * fc.sample_rate) // fc.hop + 1
    feats = torch.randn(args.batch, fc.n_mels, frames)
    lengths = torch.full((args.batch,), frames, dtype=torch.long)
    n_chars = max(1, int(args.chars_per_second * args.seconds))
    targets = torch.randint(1, N_CLASSES, (args.batch * n_chars,))
    tlens = torch.full((args.batch,), n_chars, dtype=torch.long)

    def step() -> None:
        logp = model(feats)
        ctc = ctc_loss_sum(logp, targets, model.output_lengths(lengths), tlens) / tlens.sum()
        loss = ctc + reg.loss() if reg is not None else ctc
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    audio = args.batch * args.seconds
    res = {
        "config": args.config, "batch": args.batch, "seconds": args.seconds, "regularizer": reg is not None,
        "topo_weight": lam if reg is not None else 0.0, "params": sum(p.numel() for p in model.parameters()),
        "step_s_median": med, "step_s_min": times[0], "x_real_time_median": audio / med,
        "x_real_time_best": audio / times[0], "threads": torch.get_num_threads(), "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    print(f"{args.config}: {args.batch} x {args.seconds:g} s, regularizer {'on' if reg else 'off'}: "
          f"step {med:.3f} s (median of {args.steps}), {audio / med:.1f}x real time "
          f"(best {audio / times[0]:.1f}x); load average {res['loadavg'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
