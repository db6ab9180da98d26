"""Benchmark: fitting a post-hoc layout of a 256-unit and a 2048-unit layer (issue 12).

Targets: layout of a 256-unit layer <= 3 s, of a 2048-unit layer <= 30 s on 2 cores.

What is timed (wall and process CPU seconds): :func:`toposcope.analysis.layouts.fit_layout` on a
profile already in memory, module imports done before (what
``toposcope layout`` does after the profile pass; the profile pass itself is benchmarked by
``bench_profiles.py``), including the trustworthiness it records. Profiles are synthetic but shaped
like real ones: units sit at hidden positions ``z`` in a unit square; each unit's GradNAP over 40
phones is a smooth nonlinear function of ``z`` plus noise (``--features gradnap``: 40 dimensions); its
activations over 3000 frames are a rectified random smooth field over ``z`` (``--features
activations``: the Gram matrix, so unit features are rows of the ``C x C`` correlation matrix). The
table also gives the trustworthiness (k = 5) of the grid positions against the hidden ``z``.

Usage: ``python benchmarks/bench_layout.py [--units 256 2048] [--methods som assign] [--features gradnap
activations] [--repeats 1]`` (``OMP_NUM_THREADS=2`` for the 2-core target). Record the load average
printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from toposcope.analysis.layouts import LayoutConfig, fit_layout, trustworthiness  # noqa: E402
from toposcope.analysis.profiles import LayerProfile, Profiles  # noqa: E402
from toposcope.grid import Grid  # noqa: E402

TARGETS = {256: 3.0, 2048: 30.0}


def synthetic_profiles(n: int, seed: int = 0, groups: int = 40, frames: int = 3000):
    """``(z (n, 2), Profiles)`` of one layer ``L`` with ``n`` units (see the module docstring)."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0, 1, (n, 2))
    A = rng.normal(0, 3, (2, groups))
    values = (np.sin(z @ A + rng.uniform(0, 2 * np.pi, groups)) + 0.05 * rng.normal(size=(n, groups))).T
    K = 24
    omega = rng.normal(0, 4, (2, K))
    basis = np.sin(z @ omega + rng.uniform(0, 2 * np.pi, K))  # (n, K)
    acts = np.maximum(rng.normal(size=(frames, K)) @ basis.T + 0.1 * rng.normal(size=(frames, n)), 0.0)
    lp = LayerProfile(values=values, raw=values, counts=np.ones(groups, np.int64), grid=Grid.for_channels(n),
                      gram=acts.T @ acts, act_sum=acts.sum(0), act_count=frames)
    return z, Profiles(groups=tuple(f"p{i}" for i in range(groups)), method="gradnap", grouping="phone",
                       layers={"L": lp}, meta={"split": "train"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, nargs="+", default=[256, 2048])
    ap.add_argument("--methods", nargs="+", default=["som", "assign"])
    ap.add_argument("--features", nargs="+", default=["gradnap", "activations"])
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    import scipy.optimize  # noqa: F401  (imports are not part of the timing: ~0.3 s once per command)
    import scipy.sparse.csgraph  # noqa: F401
    import minisom  # noqa: F401

    print(f"{'units':>6} {'method':<7} {'features':<12} {'wall s':>8} {'cpu s':>7} {'target':>7} {'trust(z)':>9}"
          f"  all rounds")
    ok = True
    for n in a.units:
        z, prof = synthetic_profiles(n)
        grid = Grid.for_channels(n)
        for method in a.methods:
            for feats in a.features:
                cfg = LayoutConfig(method=method, features=feats, seed=0)
                times, cpu = [], []
                for _ in range(a.repeats):
                    t0, c0 = time.perf_counter(), time.process_time()
                    lay = fit_layout(prof, "L", cfg)
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                tz = trustworthiness(z, lay.positions(), 5)
                med = statistics.median(times)
                target = TARGETS.get(n)
                met = target is None or med <= target
                ok &= met
                print(f"{n:>6} {method:<7} {feats:<12} {med:>8.2f} {statistics.median(cpu):>7.2f} "
                      f"{'' if target is None else f'{target:g}':>7} "
                      f"{tz:>9.3f}  {' '.join(f'{t:.2f}' for t in times)}{'' if met else '  MISSED'} ({grid})")
    print(f"targets {'met' if ok else 'NOT all met'}; load average at end: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
