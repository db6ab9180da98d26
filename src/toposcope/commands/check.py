"""``toposcope check DIR``: validate a corpus and print a summary (format: docs/own-data.md; rules: docs/method.md § Reliability)."""

from __future__ import annotations

import json

HELP = "validate a corpus directory (manifest + audio) and print a summary"
DESCRIPTION = ("Check every manifest line and every audio file (exists, readable, 16 kHz mono, not truncated, "
               "duration as in the manifest); print utterances, speakers, hours, per-split and per-phone "
               "counts and all problems. Exit status 1 when there are problems.")


def add_arguments(parser) -> None:
    parser.add_argument("corpus", metavar="DIR", help="corpus directory (manifest.jsonl + audio/)")
    parser.add_argument("--quick", action="store_true", help="read audio headers only, not the samples")
    parser.add_argument("--json", action="store_true", help="print the summary and problems as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def format_summary(summary: dict) -> str:
    from ..phones import PHONES

    lines = [f"corpus     {summary['root']}",
             f"utterances {summary['utterances']}",
             f"speakers   {len(summary['speakers'])}",
             f"hours      {summary['hours']:.4f}"]
    for name, s in summary["splits"].items():
        lines.append(f"  {name:<6} {s['utterances']:>6} utt  {len(s['speakers']):>4} speakers  {s['hours']:.4f} h")
    counts = summary["phone_counts"]
    if counts:
        lines.append("phones (segments):")
        known = [p for p in PHONES if p in counts] + sorted(set(counts) - set(PHONES))
        row = [f"{p}:{counts[p]}" for p in known]
        for i in range(0, len(row), 10):
            lines.append("  " + "  ".join(row[i:i + 10]))
        missing = [p for p in PHONES if p not in counts]
        if missing:
            lines.append(f"phones never seen: {' '.join(missing)}")
    return "\n".join(lines)


def run(args) -> int:
    from ..importers.common import check_corpus

    res = check_corpus(args.corpus, read_samples=not args.quick, progress=not args.no_progress)
    if args.json:
        print(json.dumps({"summary": res.summary, "problems": res.problems}, indent=1))
    else:
        print(format_summary(res.summary))
        if res.problems:
            print(f"{len(res.problems)} problem(s):")
            for p in res.problems:
                print(f"  {p}")
        else:
            print("no problems")
    return 0 if res.ok else 1
