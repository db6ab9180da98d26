"""Run every speed benchmark once, in sequence, on this machine (``make bench``).

Each script prints its own table and says which doc page holds its recorded numbers. Run it on a quiet
machine: the benchmarks time real work, and other processes on the 2 cores change the numbers. The
λ sweep and the 6-minute training runs are not here (they take 20+ minutes): see
``docs/benchmarks/training.md`` for their commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

RUNS = [
    ("synthesis: 1 h of audio (target <= 90 s)", ["bench_synth.py", "--hours", "1"]),
    ("regularizer cost vs one paper-size training step (target <= 3 %)", ["bench_regularizer.py", "--reps", "7"]),
    ("paper-config training throughput (target >= 30x real time)", ["bench_train.py", "--steps", "5", "--warmup", "2"]),
    ("profile pass vs forward+backward (target <= 1.5x)", ["bench_profiles.py", "--repeats", "5"]),
    ("optimal inputs: one region, small config (target <= 60 s)", ["bench_optimize.py"]),
    ("maps stage with 999 label permutations vs without (target <= 2x, <= 80 s)", ["bench_maps.py"]),
]


def main() -> int:
    print(f"load average before: {os.getloadavg()}")
    failed = []
    for title, argv in RUNS:
        print(f"\n=== {title}\n$ python benchmarks/{' '.join(argv)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / argv[0]), *argv[1:]], cwd=HERE.parent)
        print(f"--- {time.perf_counter() - t0:.1f} s, exit {rc}, load average {os.getloadavg()}", flush=True)
        if rc:
            failed.append(argv[0])
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
