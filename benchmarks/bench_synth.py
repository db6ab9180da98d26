"""Benchmark: audio hours synthesized per wall-clock second (target: >= 1 h of audio in <= 90 s).

    .venv/bin/python benchmarks/bench_synth.py [--hours 1] [--jobs J] [--write-doc]

Synthesizes a fresh corpus into a temporary directory (nothing resumed), prints the numbers with
the machine load (``os.getloadavg``), and with ``--write-doc`` appends a row to
``docs/benchmarks/synth.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from toposcope.synth import synthesize  # noqa: E402
from toposcope.synth.voices import cpu_count  # noqa: E402

DOC = ROOT / "docs" / "benchmarks" / "synth.md"
HEADER = """# Benchmark: `toposcope synth` (embedded default corpus, SPEC §2.3)

Target: >= 1 hour of audio in <= 90 s wall time on a 2-core machine.

Command: `.venv/bin/python benchmarks/bench_synth.py --hours 1 --write-doc`
(fresh output directory, default voices, seed 0, `jobs` = all cores).
The load average is recorded with every row: the machine is shared, so rows taken under load
are upper bounds on the time.

| date (UTC) | host | cores | jobs | utterances | audio h | wall s | audio h / wall s | s per audio h | load 1/5/15 before | load 1/5/15 after |
|---|---|---|---|---|---|---|---|---|---|---|
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-doc", action="store_true")
    args = ap.parse_args(argv)
    jobs = args.jobs or cpu_count()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        t0 = time.perf_counter()
        corpus = synthesize(Path(tmp) / "corpus", hours=args.hours, seed=args.seed, jobs=jobs,
                            progress=sys.stderr.isatty())
        wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    hours = sum(u.duration for u in corpus) / 3600
    row = (f"| {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} | {platform.node()} | {cpu_count()} | {jobs} "
           f"| {len(corpus)} | {hours:.3f} | {wall:.1f} | {hours / wall:.4f} | {wall / hours:.1f} "
           f"| {' / '.join(f'{x:.2f}' for x in load0)} | {' / '.join(f'{x:.2f}' for x in load1)} |")
    print(f"{len(corpus)} utterances, {hours:.3f} h of audio in {wall:.1f} s "
          f"= {hours / wall:.4f} audio h per wall s ({wall / hours:.1f} s per audio hour); "
          f"load before {load0}, after {load1}")
    if args.write_doc:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        text = DOC.read_text() if DOC.exists() else HEADER
        DOC.write_text(text.rstrip("\n") + "\n" + row + "\n")
        print(f"appended to {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
