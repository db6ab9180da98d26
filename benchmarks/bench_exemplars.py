"""Benchmark: the exemplar search (``toposcope exemplars``) against a GradNAP profile pass over the same batches.

Target (issue 13): the exemplar search adds <= 25 % to a profile pass.

Both sides run the same precomputed, padded batches (``bench_profiles.make_batches``: random normalised
features, random phone segmentations) through the same model (``small`` config by default, random
weights, eval mode). What each pass computes:

* ``gradnap``: one profile pass (``bench_profiles.profile``): forward through the whole model (output layer
  included, padding masked), backward of the score to the activations of all six gridded layers, frame
  labelling, streaming per-group and per-segment sums and activation Gram matrices;
* ``gradnap+ex``: the same pass with the search reading its activations (``search_exemplars(alongside=acc)``);
* ``exemplars``: :class:`toposcope.analysis.exemplars.ExemplarSearch` on its own (what ``toposcope exemplars
  RUN`` runs by default) for every region a map run writes: one 3x3 region per (layer, phone) for all six
  gridded layers and all 40 phones (placed at random, seeded), i.e. up to 9 single-filter targets + 1 joint
  target per region (shared filters searched once), top-8 non-overlapping windows of the optimal input's
  length (0.5 s) per target, plus per-frame peaks: a forward pass (no backward) up to the deepest layer
  searched (conv6), the read-out of the targets' series, the window search, and ``result()``;
* ``fwd conv6``: that forward pass alone (``_layer_acts``): the floor of any separate pass over all layers;
* ``ex conv2``: the search for 3 regions of conv2 only (what the demo's exemplars stage runs: the regions of
  the optimal inputs), whose forward stops at conv2.

The ratio ``exemplars / gradnap`` is what the search adds to a profile pass. Feature reading and the files
``toposcope exemplars`` writes (JSON, crops, WAV snippets, figures) are left out of both (docs/benchmarks/
optimize.md has whole-command numbers on the demo run).

Judge by CPU seconds with ``--threads 1``: with several torch threads on a loaded machine, threads that
wait for a core spin and are billed CPU time, which inflates the passes with more parallel regions (the
profile pass) unevenly. ``--before PATH`` adds interleaved ``@before`` rows from another version of
``analysis/exemplars.py`` (e.g. ``git show HEAD~1:src/toposcope/analysis/exemplars.py > /tmp/before.py``), run
on the same batches and model, and checks that both versions find the same exemplars.

Usage: ``python benchmarks/bench_exemplars.py [--config small] [--utterances 32] [--seconds 3]
[--batch-size 8] [--repeats 3] [--threads N] [--k 8] [--before PATH]``. Prints median wall and process-CPU
seconds of ``--repeats`` interleaved rounds and the ratios; record ``uptime`` with the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_profiles import load_version, make_batches, profile, timed  # noqa: E402

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


def search(model, batches, targets, cfg, search_cls=ExemplarSearch):
    s = search_cls(model, targets, config=cfg)
    for x, lengths, utts in batches:
        s.update(x, lengths, utts)
    return s.result()


def forward(model, batches, layers):
    """The separate pass's forward alone (no_grad, up to the deepest layer searched)."""
    from toposcope.analysis.exemplars import _layer_acts

    with torch.inference_mode():
        for x, _, _ in batches:
            _layer_acts(model, x, layers)


def same_exemplars(a, b) -> bool:
    """Two results list the same exemplars (utterance, window, value bit for bit) and peaks."""
    return (a.exemplars.keys() == b.exemplars.keys() and a.frame_max == b.frame_max and a.too_short == b.too_short
            and all([x.to_dict() for x in a.exemplars[k]] == [x.to_dict() for x in b.exemplars[k]]
                    for k in a.exemplars))


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
    ap.add_argument("--before", default=None, metavar="PATH", help="another analysis/exemplars.py to compare")
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
    demo = [t for t in targets if t.layer == "conv2"][:30]  # 3 regions of conv2, as the demo's stage
    cfg = ExemplarConfig(k=a.k, batch_size=a.batch_size)
    n_keys = len({t.key for t in targets})
    profile(model, batches[:1], "gradnap")  # warm-up
    search(model, batches[:1], targets, cfg)
    fns = {"gradnap": lambda: profile(model, batches, "gradnap"),
           "gradnap+ex": lambda: profile_with_search(model, batches, targets, cfg),
           "exemplars": lambda: search(model, batches, targets, cfg),
           "fwd conv6": lambda: forward(model, batches, model.layer_names),
           "ex conv2": lambda: search(model, batches, demo, cfg)}
    if a.before:
        before = load_version(a.before, "exemplars").ExemplarSearch
        same = same_exemplars(search(model, batches, targets, cfg), search(model, batches, targets, cfg, before))
        fns["ex@before"] = lambda: search(model, batches, targets, cfg, before)
        fns["conv2@before"] = lambda: search(model, batches, demo, cfg, before)
    walls, cpus = timed(fns, a.repeats)
    frames = sum(int(b[1].sum()) for b in batches)
    print(f"{a.config}: {a.utterances} utterances x ~{a.seconds} s ({frames} frames), batch {a.batch_size}, "
          f"{len(targets)} targets ({n_keys} distinct) in {len(model.layer_names)} layers, k={a.k}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'pass':<12} {'wall s (median)':>16} {'cpu s (median)':>15} {'cpu / gradnap':>14}")
    g = statistics.median(cpus["gradnap"])
    for k in walls:
        c = statistics.median(cpus[k])
        print(f"{k:<12} {statistics.median(walls[k]):>16.3f} {c:>15.3f} {100 * c / g:>13.0f}%")
    med = {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in walls}
    aw = med["gradnap+ex"][0] / med["gradnap"][0] - 1
    ac = med["gradnap+ex"][1] / med["gradnap"][1] - 1
    rw, rc = med["exemplars"][0] / med["gradnap"][0], med["exemplars"][1] / med["gradnap"][1]
    print(f"search inside the profile pass adds: wall {100 * aw:+.0f} %, cpu {100 * ac:+.0f} %  "
          f"[target <= 25 %: {'met' if ac <= 0.25 else 'NOT met'} (cpu)]")
    print(f"separate exemplar pass / profile pass: wall {100 * rw:.0f} %, cpu {100 * rc:.0f} %  "
          f"[target <= 25 %: {'met' if rc <= 0.25 else 'NOT met'} (cpu); its forward alone: "
          f"{100 * med['fwd conv6'][1] / med['gradnap'][1]:.0f} %]")
    print(f"the demo's stage (3 regions of conv2) / profile pass: cpu {100 * med['ex conv2'][1] / med['gradnap'][1]:.0f} %")
    if a.before:
        print(f"before -> now (cpu): all layers {med['ex@before'][1]:.3f} -> {med['exemplars'][1]:.3f} s, "
              f"conv2 {med['conv2@before'][1]:.3f} -> {med['ex conv2'][1]:.3f} s; same exemplars: {same}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
