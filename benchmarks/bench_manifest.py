"""Benchmark: what the strict manifest validation costs (issue 15). ``Corpus.load`` of a synthetic manifest of
N utterances with 30 phones each (no audio is read), CPU seconds (less sensitive to other processes than wall
time), best of ``--repeats``. ``--compare SRC`` times another checkout's ``src/`` the same way (e.g. a
``git worktree`` of the commit before the validation module) in a subprocess.

    .venv/bin/python benchmarks/bench_manifest.py --utterances 50000 [--compare /tmp/old_tree/src]

Numbers are recorded in ``docs/benchmarks.md`` (reliability rows).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

TIMER = """
import sys, time
sys.path.insert(0, {src!r})
from toposcope.corpus import Corpus
best = min((lambda t: (Corpus.load({root!r}), time.process_time() - t)[1])(time.process_time())
           for _ in range({repeats}))
print(best)
"""


def write_manifest(root: Path, n: int) -> None:
    d = {"id": "", "audio": "", "speaker": "s", "text": "a b c", "duration": 3.0,
         "phones": [[round(i * 0.1, 6), round(i * 0.1 + 0.1, 6), "aa"] for i in range(30)], "split": "train"}
    with open(root / "manifest.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            d["id"], d["audio"] = f"u{i}", f"audio/u{i}.wav"
            f.write(json.dumps(d) + "\n")


def cpu_seconds(src: Path, root: Path, repeats: int) -> float:
    out = subprocess.run([sys.executable, "-c", TIMER.format(src=str(src), root=str(root), repeats=repeats)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utterances", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compare", type=Path, default=None, help="another checkout's src/ to time the same way")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_manifest(root, args.utterances)
        rows = [("this checkout", cpu_seconds(SRC, root, args.repeats))]
        if args.compare:
            rows.append((str(args.compare), cpu_seconds(args.compare, root, args.repeats)))
    print(f"Corpus.load, {args.utterances} utterances x 30 phones, best of {args.repeats} (CPU s); "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, s in rows:
        print(f"  {name:40s} {s:6.2f} s  ({args.utterances / s:,.0f} utterances/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
