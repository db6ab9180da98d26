"""The long fuzz run (issue 15): every parser property of ``tests/test_fuzz.py`` with ≥ N cases each (default
10,000), random seeds. Prints a Markdown table (cases, failures, seconds per parser) and writes it to ``--out``.

    nice -n 19 .venv/bin/python scripts/fuzz_long.py --cases 10000 --out docs/fuzz-long.md

A failure (an exception that is not the parser's own error type naming the file, or an invalid result) stops
that parser and is reported with hypothesis' minimal failing example; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_properties(cases: int):
    os.environ["TOPOSCOPE_FUZZ_EXAMPLES"] = str(min(cases, 2000))  # per hypothesis run; repeated until >= cases
    os.environ.setdefault("TOPOSCOPE_NO_PROGRESS", "1")
    spec = importlib.util.spec_from_file_location("toposcope_fuzz", ROOT / "tests" / "test_fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10_000, help="cases per parser (default 10000)")
    ap.add_argument("--only", nargs="*", default=None, help="parser names (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown result here")
    args = ap.parse_args(argv)
    mod = load_properties(args.cases)
    names = args.only or list(mod.PARSERS)
    rows, failed = [], False
    t_all = time.time()
    for name in names:
        prop = mod.PARSERS[name]
        t0, error, runs = time.time(), None, 0
        while mod.CASES[name] < args.cases:
            runs += 1
            try:
                prop()
            except Exception as e:  # hypothesis re-raises the minimal failing example (in the notes)
                error = " ".join("".join(traceback.format_exception_only(type(e), e)).split())[:400]
                break
        dt = time.time() - t0
        rows.append((name, mod.CASES[name], "none" if error is None else f"FAILED: {error}", dt))
        failed |= error is not None
        print(f"{name:26s} {mod.CASES[name]:7d} cases  {dt:7.1f} s  {'ok' if error is None else error}", flush=True)
    load = os.getloadavg()
    lines = [f"Long fuzz run: `nice -n 19 .venv/bin/python scripts/fuzz_long.py --cases {args.cases}`",
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, Python "
             f"{platform.python_version()}, hypothesis {mod.hypothesis.__version__}, load average at the end "
             f"{load[0]:.1f}; total {time.time() - t_all:.0f} s).", "",
             "| parser (property in tests/test_fuzz.py) | cases | failures | seconds |", "|---|---:|---|---:|"]
    lines += [f"| {n} | {c} | {e} | {dt:.0f} |" for n, c, e, dt in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
