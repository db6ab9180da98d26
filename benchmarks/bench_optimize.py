"""Benchmark: one region (9 single-filter + 1 joint optimal inputs, one batch of 10) on the CPU.

Target (issue 6): <= 60 s per region for the ``small`` config with the default settings
(200 steps, 0.5 s of valid frames). Weights are random (seeded): the cost of a step does not depend
on them. The deepest gridded layer is the most expensive (longest receptive field, every conv on
the way), so it is the default.

    .venv/bin/python benchmarks/bench_optimize.py                      # small, deepest layer
    .venv/bin/python benchmarks/bench_optimize.py --layer conv1 conv6 --threads 4 --json out.json
    .venv/bin/python benchmarks/bench_optimize.py --unconstrained      # the pixel-space optimiser

Prints per layer: input frames, wall seconds per region, ms per step, CPU seconds (all threads; on a
loaded machine wall time is inflated, CPU time much less so) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from toposcope.config import load_config
from toposcope.model import Wav2Letter
from toposcope.optimize import OptimizeConfig, input_geometry
from toposcope.optimize.run import optimize_region


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small")
    ap.add_argument("--layer", nargs="+", default=None, help="layers (default: the deepest gridded layer)")
    ap.add_argument("--steps", type=int, default=OptimizeConfig().steps)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--unconstrained", action="store_true", help="the pixel-space optimiser (default: natural)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Wav2Letter(load_config(args.config).model).eval()
    layers = args.layer or [model.layer_names[-1]]
    cfg = OptimizeConfig.unconstrained(steps=args.steps) if args.unconstrained else OptimizeConfig(steps=args.steps)
    n_mels = model.cfg.features.n_mels
    # A per-band range like real normalised log-mel's 0.5-99.5 percentiles (about -2.5 .. 2.5; the cost of a
    # step does not depend on it): the natural optimiser needs one, the unconstrained one clips to it.
    data_range = (torch.full((n_mels,), -2.5), torch.full((n_mels,), 2.5))
    rows = []
    for layer in layers:
        grid = model.grids[layer]
        r0, c0 = grid.rows // 2 - 1, grid.cols // 2 - 1
        filters = [grid.index(r, c) for r in range(r0, r0 + 3) for c in range(c0, c0 + 3)]
        geo = input_geometry(model, layer, args.seconds)
        times, cpu = [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            res = optimize_region(model, layer, filters, config=cfg, frames=geo.frames, data_range=data_range)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        best = min(times)
        row = {"config": args.config, "layer": layer, "natural": cfg.natural, "frames": geo.frames, "batch": len(filters) + 1,
               "steps": args.steps, "seconds_per_region": best, "ms_per_step": 1000 * best / args.steps,
               "all_seconds": times, "cpu_seconds": min(cpu), "joint_activation": float(res["values"][-1])}
        rows.append(row)
        print(f"{args.config} {layer}: {geo.frames} input frames x {len(filters) + 1} inputs, {args.steps} steps: "
              f"{best:.1f} s per region ({row['ms_per_step']:.0f} ms/step; {min(cpu):.1f} CPU-s)  "
              f"[target <= 60 s: {'met' if best <= 60 else 'NOT met'}]")
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    print(f"torch {env['torch']}, {env['threads']} threads, {env['cpus']} CPUs, load average {env['loadavg']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": rows, "env": env}, f, indent=1)


if __name__ == "__main__":
    main()
