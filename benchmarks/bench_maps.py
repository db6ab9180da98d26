"""Benchmark: the ``maps`` stage of the demo with the label null (issue 10).

Target: ``maps`` with 999 label permutations for both demo models <= 2x the maps stage before the
label null (40 s on 2 cores, ``docs/benchmarks.md``), i.e. <= 80 s.

Two run folders ("topo" and "baseline") are built in a temp folder with what the demo's maps stage
reads: a checkpoint of the ``small`` config (random weights; BatchNorm, so the BN-folded S̄ is
computed too) and a ``profiles/gradnap-phone.npz`` of its shape with synthetic numbers (only shapes
matter for the time): ``--groups`` phones (+ sil), ``--segments`` segments of ``--speakers`` speakers,
per layer ``values``/``raw``/``counts``, ``seg_sums (S, C)``, ``seg_counts``, ``gram (C, C)``.
Then, as the demo does, :func:`toposcope.analysis.maps.maps_run` on both (PNG maps for the topographic
run only), timed:

* ``before``: ``label_permutations=0`` (what the stage computed before the label null: position nulls
  of S̄ and of every map's Moran's I, regions, PNGs; plus the new, cheap functional S̄);
* ``after``: ``label_permutations=999`` (the label null, Mantel and separation on top).

Usage: ``python benchmarks/bench_maps.py [--config small] [--layers N --units C] [--segments 10000]
[--groups 39] [--speakers 100] [--label-permutations 999] [--permutations 999] [--no-plots]``.
``--layers/--units`` replace the config's layer sizes (e.g. 8 layers of 256 units). Prints wall and
process-CPU seconds per run and in total, and ``uptime``; record them in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from toposcope.analysis.maps import maps_run
from toposcope.analysis.profiles import LayerProfile, Profiles, subtract_baseline
from toposcope.checkpoint import save_checkpoint
from toposcope.config import load_config
from toposcope.model import Wav2Letter
from toposcope.phones import PHONES


def synthetic_profiles(model, n_segments: int, n_groups: int, n_speakers: int, seed: int = 0) -> Profiles:
    """A profile of ``model``'s shape: ``n_groups`` phones + sil, ``n_segments`` segments."""
    try:
        from toposcope.analysis.profiles import SegmentTable
    except ImportError:  # older checkouts
        from types import SimpleNamespace as SegmentTable  # noqa: N813
    rng = np.random.default_rng(seed)
    groups = tuple(p for p in PHONES if p != "sil")[:n_groups] + ("sil",)
    label = np.array(groups)[rng.integers(0, len(groups), size=n_segments)]
    speaker = np.array([f"spk{i}" for i in rng.integers(0, n_speakers, size=n_segments)])
    seg = SegmentTable(utt=np.array([f"u{i // 30}" for i in range(n_segments)]), speaker=speaker, label=label,
                       start=np.zeros(n_segments), end=np.full(n_segments, 0.08))
    layers = {}
    for name in model.layer_names:
        grid = model.grids[name]
        C = grid.size
        counts = rng.integers(1, 12, size=n_segments)
        sums = counts[:, None] * rng.normal(size=(n_segments, C))
        raw = np.stack([sums[label == g].sum(0) / counts[label == g].sum() for g in groups])
        c = np.array([counts[label == g].sum() for g in groups])
        a = rng.normal(size=(4 * C, C))
        lp = LayerProfile(values=subtract_baseline(raw, c), raw=raw, counts=c, grid=grid)
        for k, v in dict(seg_sums=sums, seg_counts=counts, gram=a.T @ a, act_sum=a.sum(0), act_count=4 * C).items():
            setattr(lp, k, v)
        layers[name] = lp
    prof = Profiles(groups=groups, method="gradnap", grouping="phone", layers=layers,
                    meta={"checkpoint": "best", "split": "test"})
    prof.segments = seg
    return prof


def build_run(root: Path, cfg, args, seed: int) -> Path:
    torch.manual_seed(seed)
    model = Wav2Letter(cfg.model).eval()
    save_checkpoint(root / "checkpoints" / "best.pt", {"model": model.state_dict(), "config": cfg.to_dict()})
    synthetic_profiles(model, args.segments, args.groups, args.speakers, seed).save(
        root / "profiles" / "gradnap-phone.npz")
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="small")
    ap.add_argument("--layers", type=int, default=0, help="replace the config's gridded layers by N layers ...")
    ap.add_argument("--units", type=int, default=256, help="... of C units each (kernel 3)")
    ap.add_argument("--segments", type=int, default=10000)
    ap.add_argument("--groups", type=int, default=39)
    ap.add_argument("--speakers", type=int, default=100)
    ap.add_argument("--label-permutations", type=int, default=999)
    ap.add_argument("--permutations", type=int, default=999)
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("TOPOSCOPE_NO_PROGRESS", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    cfg = load_config(args.config)
    if args.layers:
        spec = dataclasses.replace(cfg.model.layers[1], channels=args.units, kernel=3, stride=1, grid=None)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, layers=(spec,) * args.layers))
    print(f"config {args.config}: layers {[l.channels for l in cfg.model.layers]}, norm {cfg.model.norm}; "
          f"{args.segments} segments, {args.groups} phones + sil, {args.speakers} speakers")
    print(f"load average at start: {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"topo": build_run(Path(tmp) / "topo", cfg, args, 0),
                "baseline": build_run(Path(tmp) / "baseline", cfg, args, 1)}
        for what, lperm in (("before (no label null)", 0), (f"after ({args.label_permutations} label perms)",
                                                            args.label_permutations)):
            total_w = total_c = 0.0
            for name, run in runs.items():
                plots = name == "topo" and not args.no_plots
                w0, c0 = time.perf_counter(), time.process_time()
                maps_run(run, n_permutations=args.permutations, label_permutations=lperm, plots=plots,
                         progress=False, out=run / f"maps-{lperm}")
                w, c = time.perf_counter() - w0, time.process_time() - c0
                total_w += w
                total_c += c
                rows.append((what, name + (" (PNGs)" if plots else ""), w, c))
            rows.append((what, "both", total_w, total_c))
    print(f"\n{'stage':34s} {'run':16s} {'wall s':>8s} {'CPU s':>8s}")
    for what, name, w, c in rows:
        print(f"{what:34s} {name:16s} {w:8.1f} {c:8.1f}")
    before, after = rows[2][2], rows[5][2]
    print(f"\nafter / before (wall, both runs): {after / before:.2f}x; target: after <= 80 s (2 x 40 s)")
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
