"""Benchmark: the exemplar search (``toposcope exemplars``) against a GradNAP profile pass over the same batches.

Target (issue 13): the exemplar search adds <= 25 % to a profile pass.

Both sides run the same precomputed, padded batches (``bench_profiles.make_batches``: random normalised
features, random phone segmentations) through the same model (``small`` config by default, random
weights, eval mode):

* ``gradnap``: one profile pass (``bench_profiles.profile``: forward, backward to every gridded layer's
  activations, labelling, streaming sums);
* ``exemplars``: :class:`toposcope.analysis.exemplars.ExemplarSearch` for every region a map run
  writes: one 3x3 region per (layer, phone) for all gridded layers and all 40 phones (placed at random,
  seeded), i.e. up to 9 single-filter targets + 1 joint target per region (shared filters searched once),
  top-8 non-overlapping windows of the optimal input's length (0.5 s) per target, plus per-frame peaks.

The ratio ``exemplars / gradnap`` is what the search adds to a profile pass. Feature reading is left out
of both (it is the same shared loader for both passes).

Usage: ``python benchmarks/bench_exemplars.py [--config small] [--utterances 32] [--seconds 3]
[--batch-size 8] [--repeats 3] [--threads N] [--k 8]``. Prints median wall and process-CPU seconds of
``--repeats`` interleaved rounds and the ratio; record ``uptime`` with the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_profiles import make_batches, profile, timed  # noqa: E402

from toposcope.analysis.exemplars import ExemplarConfig, ExemplarSearch, targets_for_region  # noqa: E402
from toposcope.config import load_config  # noqa: E402
from toposcope.model import Wav2Letter  # noqa: E402
from toposcope.phones import PHONES  # noqa: E402


def region_targets(model, seed: int = 0):
    """One random 3x3 region per (gridded layer, phone), as ``maps`` writes them."""
    g = np.random.default_rng(seed)
    targets = []
    for layer in model.layer_names:
        grid = model.grids[layer]
        for _ in PHONES:
            r0 = int(g.integers(0, max(grid.rows - 2, 1)))
            c0 = int(g.integers(0, max(grid.cols - 2, 1)))
            filters = [grid.index(r, c) for r in range(r0, min(r0 + 3, grid.rows))
                       for c in range(c0, min(c0 + 3, grid.cols))]
            targets += targets_for_region(layer, filters)
    return targets


def search(model, batches, targets, cfg):
    s = ExemplarSearch(model, targets, config=cfg)
    for x, lengths, utts in batches:
        s.update(x, lengths, utts)
    return s.result()


def profile_with_search(model, batches, targets, cfg):
    """The profile pass with the search reading its activations (what ``search_exemplars(alongside=acc)`` does)."""
    from toposcope.hooks import record

    s = ExemplarSearch(model, targets, config=cfg)
    acc = None
    for x, lengths, utts in batches:
        with record(model, s.layers) as rec:
            if acc is None:
                acc = profile(model, [(x, lengths, utts)], "gradnap")
            else:
                acc.update(x, lengths, utts)
        s.update_acts(rec.acts, lengths, utts)
    return s.result()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small")
    ap.add_argument("--utterances", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    ap.add_argument("--k", type=int, default=8)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Wav2Letter(load_config(a.config).model).eval()
    batches = make_batches(model.cfg, a.utterances, a.seconds, a.batch_size)
    for _, _, utts in batches:  # ExemplarSearch reads speaker/phones/duration like a manifest utterance
        for u in utts:
            u.speaker = getattr(u, "speaker", "s")
    targets = region_targets(model)
    cfg = ExemplarConfig(k=a.k, batch_size=a.batch_size)
    n_keys = len({t.key for t in targets})
    profile(model, batches[:1], "gradnap")  # warm-up
    search(model, batches[:1], targets, cfg)
    walls, cpus = timed({"gradnap": lambda: profile(model, batches, "gradnap"),
                         "gradnap+ex": lambda: profile_with_search(model, batches, targets, cfg),
                         "exemplars": lambda: search(model, batches, targets, cfg)}, a.repeats)
    frames = sum(int(b[1].sum()) for b in batches)
    print(f"{a.config}: {a.utterances} utterances x ~{a.seconds} s ({frames} frames), batch {a.batch_size}, "
          f"{len(targets)} targets ({n_keys} distinct) in {len(model.layer_names)} layers, k={a.k}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'pass':<10} {'wall s (median)':>16} {'cpu s (median)':>15}")
    for k in walls:
        print(f"{k:<10} {statistics.median(walls[k]):>16.3f} {statistics.median(cpus[k]):>15.3f}")
    med = {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in walls}
    aw = med["gradnap+ex"][0] / med["gradnap"][0] - 1
    ac = med["gradnap+ex"][1] / med["gradnap"][1] - 1
    rw, rc = med["exemplars"][0] / med["gradnap"][0], med["exemplars"][1] / med["gradnap"][1]
    print(f"search inside the profile pass adds: wall {100 * aw:+.0f} %, cpu {100 * ac:+.0f} %  "
          f"[target <= 25 %: {'met' if ac <= 0.25 else 'NOT met'} (cpu)]")
    print(f"separate exemplar pass / profile pass: wall {100 * rw:.0f} %, cpu {100 * rc:.0f} %  "
          f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
