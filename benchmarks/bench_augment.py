"""Step rate with and without augmentation (issue 14: augmentation may cost at most 15 % of the step rate).

Trains ``--config`` (default ``small``) on ``--data`` for ``--steps`` optimizer steps per setting and times
steps ``--skip``..``--steps`` from the training callback (start-up, the RIR bank and the final validation are
outside the timed window). Settings: augmentation off; on, with the default ``DataLoader`` workers; on,
augmenting in the training process (``TOPOSCOPE_DATA_WORKERS=0``). Each setting runs in its own process,
interleaved ``--repeats`` times. Run it on a quiet machine; the load average is printed.

    .venv/bin/python benchmarks/bench_augment.py --data /tmp/corpus --steps 60 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SETTINGS = {"off": ({}, False), "on": ({}, True), "on, workers 0": ({"TOPOSCOPE_DATA_WORKERS": "0"}, True)}


def child(data: str, config: str, steps: int, skip: int, augment: bool, out: str) -> None:
    from toposcope.train import train

    marks = {}

    def cb(info):
        if info["step"] in (skip, steps):
            marks[info["step"]] = time.perf_counter()

    train(data, out, config=config, max_steps=steps, epochs=1000, augment=augment, progress=False, callback=cb)
    print(json.dumps({"s_per_step": (marks[steps] - marks[skip]) / (steps - skip), "load": os.getloadavg()[0]}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--config", default="small")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--skip", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        with tempfile.TemporaryDirectory() as tmp:
            child(args.data, args.config, args.steps, args.skip, args.child == "1", f"{tmp}/run")
        return 0
    res = {k: [] for k in SETTINGS}
    for r in range(args.repeats):
        for name, (env, aug) in SETTINGS.items():
            p = subprocess.run([sys.executable, __file__, "--data", args.data, "--config", args.config, "--steps",
                                str(args.steps), "--skip", str(args.skip), "--child", "1" if aug else "0"],
                               env={**os.environ, **env}, capture_output=True, text=True)
            if p.returncode:
                print(p.stderr[-2000:], file=sys.stderr)
                return 1
            d = json.loads(p.stdout.strip().splitlines()[-1])
            res[name].append(d["s_per_step"])
            print(f"round {r + 1}: {name:>14}: {d['s_per_step']:.3f} s/step (load {d['load']:.1f})", flush=True)
    base = statistics.median(res["off"])
    for name, v in res.items():
        m = statistics.median(v)
        print(f"{name:>14}: median {m:.3f} s/step, step rate {100 * (base / m - 1):+.1f} % vs off")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
