"""Benchmark: audio hours synthesized per wall-clock second (target: >= 1 h of audio in <= 90 s).

    .venv/bin/python benchmarks/bench_synth.py [--hours 1] [--jobs J] [--write-doc] [--check-alignment]

Synthesizes a fresh corpus into a temporary directory (nothing resumed), prints the numbers with
the machine load (``os.getloadavg``), and with ``--write-doc`` appends a row to
``docs/benchmarks/synth.md``. ``--check-alignment`` also estimates, per voice, the offset between
labels and audio: the shift of the label windows that maximises the contrast "share of energy
above 4 kHz in s/sh/z segments minus that in vowel segments" (25 ms centred frames, 1 ms hop,
shifts -30..+30 ms). 0 means the fricatives sit exactly where the labels say.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from toposcope.synth import synthesize  # noqa: E402
from toposcope._util import usable_cores  # noqa: E402

DOC = ROOT / "docs" / "benchmarks" / "synth.md"
HEADER = """# Benchmark: `toposcope synth` (embedded default corpus, docs/method.md § Data and phones)

Target: >= 1 hour of audio in <= 90 s wall time on a 2-core machine.
Command: `.venv/bin/python benchmarks/bench_synth.py --hours 1 --write-doc`.
Rows taken under load are upper bounds on the time; CPU s does not depend on the load.

## Runs

| date (UTC) | host | cores | jobs | utterances | audio h | wall s | CPU s (all processes) | audio h / wall s | s per audio h | load 1/5/15 before | load 1/5/15 after |
|---|---|---|---|---|---|---|---|---|---|---|---|
"""


def alignment_offsets(corpus, per_voice: int = 40) -> dict[str, tuple[float, float]]:
    """Per voice: (best label shift in ms, contrast at that shift); see the module doc."""
    import numpy as np

    from toposcope.audio import read_audio
    from toposcope.phones import VOWELS

    shifts = np.arange(-30, 31, 2) / 1000
    by_voice: dict[str, list] = {}
    for u in corpus:
        by_voice.setdefault(u.extra.get("voice", u.speaker), []).append(u)
    out = {}
    for voice, utts in sorted(by_voice.items()):
        score = np.zeros(len(shifts))
        for u in utts[:per_voice]:
            x = read_audio(corpus.audio_path(u))
            hop, win = 16, 400
            n = len(x) // hop
            frames = np.pad(x, (win // 2, win // 2))[np.arange(n)[:, None] * hop + np.arange(win)]
            p = np.abs(np.fft.rfft(frames * np.hanning(win), axis=1)) ** 2
            hf = p[:, 100:].sum(1) / (p.sum(1) + 1e-12)  # bins >= 4 kHz
            for k, d in enumerate(shifts):
                fric, vow = [], []
                for s, e, lab in u.phones:
                    i0, i1 = int((s + d) * 1000), int((e + d) * 1000)
                    if i0 < 0 or i1 >= n or i1 <= i0:
                        continue
                    if lab in ("s", "sh", "z"):
                        fric.append(hf[i0:i1].mean())
                    elif lab in VOWELS:
                        vow.append(hf[i0:i1].mean())
                if fric and vow:
                    score[k] += np.mean(fric) - np.mean(vow)
        k = int(np.argmax(score))
        out[voice] = (float(shifts[k] * 1000), float(score[k] / max(1, min(per_voice, len(utts)))))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-doc", action="store_true")
    ap.add_argument("--check-alignment", action="store_true")
    args = ap.parse_args(argv)
    jobs = args.jobs or usable_cores()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        r0 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        t0 = time.perf_counter()
        corpus = synthesize(Path(tmp) / "corpus", hours=args.hours, seed=args.seed, jobs=jobs,
                            progress=sys.stderr.isatty())
        wall = time.perf_counter() - t0
        r1 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        offsets = alignment_offsets(corpus) if args.check_alignment else None
    cpu = sum((b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime) for a, b in zip(r0, r1))
    load1 = os.getloadavg()
    hours = sum(u.duration for u in corpus) / 3600
    row = (f"| {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} | {platform.node()} | {usable_cores()} | {jobs} "
           f"| {len(corpus)} | {hours:.3f} | {wall:.1f} | {cpu:.1f} | {hours / wall:.4f} | {wall / hours:.1f} "
           f"| {' / '.join(f'{x:.2f}' for x in load0)} | {' / '.join(f'{x:.2f}' for x in load1)} |")
    print(f"{len(corpus)} utterances, {hours:.3f} h of audio in {wall:.1f} s "
          f"({cpu:.1f} CPU s) = {hours / wall:.4f} audio h per wall s ({wall / hours:.1f} s per audio hour); "
          f"load before {load0}, after {load1}")
    if args.write_doc:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        text = DOC.read_text() if DOC.exists() else HEADER
        DOC.write_text(text.rstrip("\n") + "\n" + row + "\n")
        print(f"appended to {DOC}")
    if offsets:
        print("label/audio offset per voice (ms, positive: audio later than labels) and contrast:")
        for v, (d, c) in offsets.items():
            print(f"  {v:34s} {d:+5.0f} ms  {c:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
