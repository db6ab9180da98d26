"""Cost of the topographic regularizer relative to one training step, at the paper size (docs/method.md § Features and model, §4).

    .venv/bin/python benchmarks/bench_regularizer.py [--reps 7] [--threads N] [--no-compile] [--no-naive] [--write]

Builds ``Wav2Letter(load_config("paper").model)`` (conv1 256x128x48, 7 x 256x256x7, 2048x256x32,
2048x2048x1; grids 16x16 and 64x32) and times, interleaved in one process (so machine load hits
all of them alike; medians reported):

* ``step``      one training step: batch 16 x 3 s of random log-mel features (128 mels, hop 128 ->
                376 frames), CTC loss on random targets, backward, Adam step;
* ``step+reg``  the same step with ``CTC + λ · reg()`` as the loss (λ = 0.01);
* ``reg``       the regularizer alone: forward + backward over all 10 gridded layers (the weights'
                ``.grad`` reset to ``None`` first, as a training step does);
* ``reg (compiled)``  the same with ``torch.compile(reg.loss)``;
* ``naive``     a straightforward shifted-slice implementation (autograd through weight-sized
                temporaries), for comparison, eager and compiled.

``--write`` puts the markdown table into ``docs/benchmarks/regularizer.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from toposcope.config import load_config  # noqa: E402
from toposcope.model import Wav2Letter  # noqa: E402
from toposcope.topography import TopographicRegularizer  # noqa: E402


def naive_loss(model, lam: float, n: int = 3) -> torch.Tensor:
    """Shifted-slice reference of docs/method.md § Regularizer (clip border): one weight-sized temporary per offset."""
    total = 0.0
    h = n // 2
    for name in model.layer_names:
        w = model.weight(name)
        g = model.grids[name]
        u = w.reshape(w.shape[0], -1)
        u = (u / u.norm(dim=1, keepdim=True).clamp_min(1e-8)).reshape(g.rows, g.cols, -1)
        acc = u.new_zeros(g.rows, g.cols)
        den = u.new_zeros(g.rows, g.cols)
        for dr in range(-h, h + 1):
            for dc in range(-h, h + 1):
                if dr == 0 and dc == 0:
                    continue
                inv_d = 1.0 / math.hypot(dr, dc)
                r0, r1 = max(0, -dr), g.rows - max(0, dr)
                c0, c1 = max(0, -dc), g.cols - max(0, dc)
                cos = (u[r0:r1, c0:c1] * u[r0 + dr:r1 + dr, c0 + dc:c1 + dc]).sum(-1)
                pad = (c0, g.cols - c1, r0, g.rows - r1)
                acc = acc + F.pad(inv_d * cos, pad)
                den = den + F.pad(torch.full_like(cos, inv_d), pad)
        S = acc / den
        total = total + (S.numel() - S.sum())
    return lam * total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions of each item (medians)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=376, help="3 s at 16 kHz, hop 128")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--write", action="store_true", help="write docs/benchmarks/regularizer.md")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    lam = 0.01
    cfg = load_config("paper")
    model = Wav2Letter(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    reg = TopographicRegularizer(model, weight=lam)
    feats = torch.randn(args.batch, cfg.model.features.n_mels, args.frames)
    in_lens = torch.full((args.batch,), args.frames, dtype=torch.long)
    out_lens = model.output_lengths(in_lens)
    tgt_lens = torch.randint(25, 45, (args.batch,))
    targets = torch.randint(1, 29, (int(tgt_lens.sum()),))
    params = [model.weight(n) for n in model.layer_names]

    def step(with_reg: bool):
        opt.zero_grad(set_to_none=True)
        lp = model(feats)                                   # (B, T', classes)
        loss = F.ctc_loss(lp.transpose(0, 1), targets, out_lens, tgt_lens, zero_infinity=True)
        if with_reg:
            loss = loss + reg()
        loss.backward()
        opt.step()

    def run_reg(fn):
        for p in params:
            p.grad = None
        fn().backward()

    items = {
        "step": lambda: step(False),
        "step+reg": lambda: step(True),
        "reg": lambda: run_reg(reg.loss),
    }
    if not args.no_naive:
        items["naive"] = lambda: run_reg(lambda: naive_loss(model, lam))
    compile_note = ""
    if not args.no_compile:
        try:
            creg = torch.compile(reg.loss, fullgraph=True)
            t0 = time.perf_counter()
            run_reg(creg)
            items["reg (compiled)"] = lambda: run_reg(creg)
            compile_note = f"torch.compile warm-up: regularizer {time.perf_counter() - t0:.1f} s"
            print(compile_note, file=sys.stderr, flush=True)
            if not args.no_naive:
                cnaive = torch.compile(lambda: naive_loss(model, lam))
                t0 = time.perf_counter()
                run_reg(cnaive)
                items["naive (compiled)"] = lambda: run_reg(cnaive)
                compile_note += f", naive {time.perf_counter() - t0:.1f} s"
        except Exception as e:  # report, don't hide: the eager numbers are still valid
            compile_note = f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            print(compile_note, file=sys.stderr)

    for k, fn in items.items():  # warm-up (allocator, Adam state, stencil caches)
        t0 = time.perf_counter()
        fn()
        print(f"warm-up {k}: {(time.perf_counter() - t0) * 1e3:.0f} ms", file=sys.stderr, flush=True)
    times: dict[str, list[float]] = {k: [] for k in items}
    load_before = os.getloadavg()
    for rep in range(args.reps):
        for k, fn in items.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
        print(f"rep {rep + 1}/{args.reps}: " + ", ".join(f"{k} {v[-1] * 1e3:.0f} ms" for k, v in times.items()),
              file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    base = med["step"]

    try:
        cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        cpu = platform.processor()
    lines = [
        f"| item | median ms | % of step | min ms | max ms |",
        f"|---|---:|---:|---:|---:|",
    ]
    for k, v in times.items():
        lines.append(f"| {k} | {med[k]:.1f} | {100 * med[k] / base:.2f}% | {min(v) * 1e3:.1f} | "
                     f"{max(v) * 1e3:.1f} |")
    extra = (f"step+reg − step = {med['step+reg'] - base:+.1f} ms "
             f"({100 * (med['step+reg'] - base) / base:+.2f}%, noisy: difference of two large numbers)")
    info = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {cpu or '?'}; "
            f"batch {args.batch} x {args.frames} frames; {args.reps} interleaved reps; "
            f"load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
            f"after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}")
    table = "\n".join(lines)
    print(table)
    print(extra)
    print(info)
    if compile_note:
        print(compile_note)
    if args.write:
        write_doc(table, extra, info, compile_note, " ".join(sys.argv[1:]))


def write_doc(table: str, extra: str, info: str, compile_note: str, argv: str) -> None:
    out = ROOT / "docs" / "benchmarks" / "regularizer.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = out.read_text() if out.exists() else ""
    marker = "<!-- bench_regularizer: generated below -->"
    head = text.split(marker)[0] if marker in text else text
    if not head.strip():
        head = "# Topographic regularizer: cost per training step\n\n"
    body = (f"{marker}\n\n## Last run\n\nCommand: `.venv/bin/python benchmarks/bench_regularizer.py {argv}`\n\n"
            f"{table}\n\n{extra}\n\n{info}\n\n{compile_note}\n")
    out.write_text(head.rstrip() + "\n\n" + body)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
