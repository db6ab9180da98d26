"""Benchmark: a profile pass vs. one forward+backward (training-style) pass over the same batches.

Target (issue 5): GradNAP profile pass <= 1.5x one forward+backward pass over the same data.

Both sides run the same precomputed, padded feature batches through the same model (``small``
config by default, random weights, eval mode):

* ``fwd+bwd``: forward, CTC loss against random transcripts, ``loss.backward()`` (weight gradients,
  as in training; no optimizer step);
* ``gradnap``: :class:`toposcope.analysis.profiles.ProfileAccumulator.update` (masked forward,
  backward of the target score to the activations of all gridded layers, frame labelling, streaming
  per-group and per-segment sums, activation Gram matrices);
* ``nap``: the same without the backward pass.

``--before PATH`` adds interleaved rows ``gradnap@before`` / ``nap@before`` from another version of
``analysis/profiles.py`` (e.g. ``git show HEAD~1:src/toposcope/analysis/profiles.py > /tmp/before.py``),
run on the same batches and model, for before/after numbers from one process.

Usage: ``python benchmarks/bench_profiles.py [--config small] [--utterances 32] [--seconds 3]
[--batch-size 8] [--repeats 3] [--threads N] [--before PATH]``. Prints a table (median wall and
process-CPU seconds of ``--repeats`` interleaved rounds) and the ratios; record ``uptime`` with the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from toposcope.config import load_config
from toposcope.model import Wav2Letter
from toposcope.phones import PHONES
from toposcope.analysis.profiles import ProfileAccumulator, layer_lengths


def make_batches(cfg, n_utts: int, seconds: float, batch_size: int, seed: int = 0):
    """Random normalised 'features' and random phone segmentations (only shapes and labels matter)."""
    g = np.random.default_rng(seed)
    f = cfg.features
    batches = []
    utts = []
    for i in range(n_utts):
        dur = seconds * g.uniform(0.8, 1.2)
        cuts = np.sort(g.uniform(0, dur, size=int(dur * 12)))
        edges = np.concatenate([[0.0], cuts, [dur]])
        phones = [(float(a), float(b), PHONES[int(g.integers(len(PHONES)))]) for a, b in zip(edges[:-1], edges[1:])
                  if b > a]
        utts.append(SimpleNamespace(id=f"u{i}", speaker=f"s{i % 4}", duration=dur, phones=phones, text="the cat"))
    utts.sort(key=lambda u: u.duration)
    for i in range(0, n_utts, batch_size):
        chunk = utts[i:i + batch_size]
        lengths = torch.tensor([int(u.duration * f.sample_rate) // f.hop + 1 for u in chunk])
        x = torch.zeros(len(chunk), f.n_mels, int(lengths.max()))
        for b, n in enumerate(lengths.tolist()):
            x[b, :, :n] = torch.from_numpy(g.standard_normal((f.n_mels, n)).astype(np.float32))
        batches.append((x, lengths, chunk))
    return batches


def fwd_bwd(model, batches):
    gen = torch.Generator().manual_seed(0)
    for x, lengths, _ in batches:
        model.zero_grad(set_to_none=True)
        logp = model(x, lengths)
        out_len = layer_lengths(lengths, model.geometry("output")).clamp(max=logp.shape[1])
        tl = torch.full((len(lengths),), 20, dtype=torch.long)
        tgt = torch.randint(1, 29, (int(tl.sum()),), generator=gen)
        loss = F.ctc_loss(logp.transpose(0, 1), tgt, out_len, tl, zero_infinity=True)
        loss.backward()


def profile(model, batches, method, accumulator=ProfileAccumulator):
    f = model.cfg.features
    try:
        acc = accumulator(model, hop=f.hop, sample_rate=f.sample_rate, adjustment=method)
    except TypeError:  # versions before the adjustment objects took method=
        acc = accumulator(model, hop=f.hop, sample_rate=f.sample_rate, method=method)
    for x, lengths, utts in batches:
        acc.update(x, lengths, utts)
    return acc


def forward_only(model, batches):
    with torch.no_grad():
        for x, lengths, _ in batches:
            model(x, lengths)


def load_version(path, name: str):
    """Another version of ``toposcope/analysis/<name>.py`` (e.g. ``git show REV:...``), imported as the sibling
    module ``toposcope.analysis._<name>_before``."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(f"toposcope.analysis._{name}_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def load_before(path):
    """``ProfileAccumulator`` of another version of ``analysis/profiles.py``."""
    return load_version(path, "profiles").ProfileAccumulator


def timed(fns: dict, repeats: int) -> dict:
    """Interleaved runs (one of each per round), so load changes hit all passes alike."""
    out = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            out[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return out, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small")
    ap.add_argument("--utterances", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    ap.add_argument("--before", default=None, metavar="PATH", help="another analysis/profiles.py to compare")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Wav2Letter(load_config(a.config).model).eval()
    batches = make_batches(model.cfg, a.utterances, a.seconds, a.batch_size)
    frames = sum(int(b[1].sum()) for b in batches)
    fwd_bwd(model, batches[:1])  # warm-up
    profile(model, batches[:1], "gradnap")
    fns = {"fwd+bwd": lambda: fwd_bwd(model, batches),
           "gradnap": lambda: profile(model, batches, "gradnap"),
           "nap": lambda: profile(model, batches, "nap"),
           "fwd only": lambda: forward_only(model, batches)}
    if a.before:
        before = load_before(a.before)
        profile(model, batches[:1], "gradnap", before)
        fns["gradnap@before"] = lambda: profile(model, batches, "gradnap", before)
        fns["nap@before"] = lambda: profile(model, batches, "nap", before)
    runs, cpu = timed(fns, a.repeats)
    med = {k: statistics.median(v) for k, v in runs.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    base, grad = med["fwd+bwd"], med["gradnap"]
    print(f"config={a.config} utterances={a.utterances} x ~{a.seconds:g}s ({frames} feature frames) "
          f"batch={a.batch_size} threads={torch.get_num_threads()} repeats={a.repeats}")
    print(f"{'pass':<15}{'wall s':>9}{'ratio':>7}{'cpu s':>9}{'ratio':>7}   wall s of all rounds")
    for name, t in med.items():
        print(f"{name:<15}{t:>9.3f}{t / base:>7.2f}{cmed[name]:>9.3f}{cmed[name] / cmed['fwd+bwd']:>7.2f}   "
              f"{' '.join(f'{r:.3f}' for r in runs[name])}")
    ok = grad <= 1.5 * base
    print(f"target gradnap <= 1.5x fwd+bwd (wall medians): {'met' if ok else 'NOT met'} ({grad / base:.2f}x; "
          f"process CPU time {cmed['gradnap'] / cmed['fwd+bwd']:.2f}x)")
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
