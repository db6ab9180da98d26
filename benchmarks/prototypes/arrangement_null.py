"""Is the label null calibrated when filters sit on the grid at random? (diagnostic, after the 2026-11-26 demo)

The label null (docs/statistics.md) asks whether phone maps are more clustered (mean Moran's I over
phones) than maps recomputed under permuted phone labels. In the λ = 0 baseline the grid position of a
filter is arbitrary, yet two demo runs found the baseline beyond the label null in one and two layers
(conv3 both times). This script puts every filter of a run's layer at a random grid position (a random
permutation of the channel axis of the profile's per-segment sums, the same for the real and the
permuted labels), runs the label null again, and repeats. With no arrangement at all, the label null
should reject at its nominal rate (5 % at p < 0.05); the observed run's excess over the null is also
placed in the distribution of excesses under random arrangements.

    .venv/bin/python benchmarks/prototypes/arrangement_null.py RUN [RUN ...] [--arrangements 100] [--labels 199]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def excess_and_p(seg_sums, seg_counts, perms, grid) -> tuple[float, float]:
    """Mean Moran's I over movable phones minus its label-null mean, and the label-null p-value."""
    from toposcope.analysis.label_null import label_null_statistics
    from toposcope.analysis.stats import morans_i

    res = label_null_statistics(seg_sums, seg_counts, perms, {"I": lambda m: morans_i(m)}, grid=grid)
    obs, null = res["I"]
    movable = np.flatnonzero(~perms.fixed)
    o = float(np.nanmean(obs[movable]))
    n = np.nanmean(null[:, movable], axis=1)
    return o - float(n.mean()), float((1 + np.sum(n >= o)) / (1 + len(n)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--profile", default="gradnap-phone")
    ap.add_argument("--arrangements", type=int, default=100)
    ap.add_argument("--labels", type=int, default=199, help="label permutations per label null")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from toposcope.analysis.label_null import permute_labels, segments_of
    from toposcope.analysis.profiles import load_profiles

    print("| run | layer | excess (as trained) | label-null p (as trained) | excess under random arrangements: mean ± sd "
          "| share of random arrangements with label-null p < 0.05 | arrangement p of the trained excess |")
    print("|---|---|---|---|---|---|---|")
    for run in a.runs:
        prof = load_profiles(Path(run) / "profiles" / f"{a.profile}.npz")
        labels, speakers = segments_of(prof)
        perms = permute_labels(labels, speakers, prof.groups, a.labels, seed=a.seed)
        rng = np.random.default_rng(a.seed)
        for name, lp in prof.layers.items():
            ex0, p0 = excess_and_p(lp.seg_sums, lp.seg_counts, perms, lp.grid)
            ex, ps = [], []
            for _ in range(a.arrangements):
                pi = rng.permutation(lp.seg_sums.shape[1])
                e, p = excess_and_p(lp.seg_sums[:, pi], lp.seg_counts, perms, lp.grid)
                ex.append(e)
                ps.append(p)
            ex, ps = np.array(ex), np.array(ps)
            p_arr = (1 + np.sum(ex >= ex0)) / (1 + len(ex))
            print(f"| {Path(run).name} | {name} | {ex0:.4f} | {p0:.3f} | {ex.mean():.4f} ± {ex.std():.4f} | "
                  f"{100 * np.mean(ps < 0.05):.0f} % | {p_arr:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
