"""Benchmark: peak memory of loading a manifest, with and without its alignments (issue 11).

Training and evaluation load the corpus as metadata only (``Corpus.load(root, alignments=False)``):
every line is still validated, but the parsed phone/word segments (most of a line's memory) are not
kept. This builds manifests of N lines by repeating a real corpus's lines under new ids (their phone
alignments included; no audio is read) and measures, each in a fresh process, the peak RSS after
``import toposcope.corpus`` and after ``Corpus.load`` both ways.

    .venv/bin/python benchmarks/bench_manifest_rss.py CORPUS --lines 2022 20000 60000

Numbers are recorded in ``docs/benchmarks/data.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

PROBE = """
import resource, sys, time
sys.path.insert(0, {src!r})
from toposcope.corpus import Corpus
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.process_time()
c = Corpus.load({root!r}, alignments={alignments})
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time() - t, len(c))
"""


def build(source: Path, root: Path, n: int) -> None:
    lines = [json.loads(l) for l in (source / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
    root.mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    with open(root / "manifest.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            d = dict(lines[i % len(lines)])
            d["id"] = f"{d['id']}~{i // len(lines)}"
            f.write(json.dumps(d) + "\n")


def probe(root: Path, alignments: bool) -> tuple[float, float, float, int]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(src=str(SRC), root=str(root), alignments=alignments)],
                         capture_output=True, text=True, check=True).stdout.split()
    base, peak, cpu, n = int(out[0]), int(out[1]), float(out[2]), int(out[3])
    return base / 1024, peak / 1024, cpu, n  # ru_maxrss is in KiB on Linux


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="a corpus folder whose manifest lines are repeated")
    ap.add_argument("--lines", type=int, nargs="+", default=[2022, 20000, 60000])
    args = ap.parse_args(argv)
    print("| lines | with alignments: peak RSS (MiB) | metadata only: peak RSS (MiB) | per line, with / without (KB) | "
          "load CPU s, with / without |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.lines:
            root = Path(tmp) / f"m{n}"
            build(args.corpus, root, n)
            b1, full, c1, _ = probe(root, True)
            b2, meta, c2, _ = probe(root, False)
            print(f"| {n} | {full:.0f} | {meta:.0f} | {(full - b1) * 1024 / n:.1f} / {(meta - b2) * 1024 / n:.1f} | "
                  f"{c1:.1f} / {c2:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
