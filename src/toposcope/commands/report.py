"""``toposcope report``: one self-contained HTML page of a run (and a baseline run)."""

from __future__ import annotations

HELP = "write a self-contained HTML report of a run (optionally against a baseline run)"
DESCRIPTION = (
    "Read a run directory (config, metrics, eval, profiles, maps, optimal inputs, filter close-ups) and write one "
    "HTML file with every image and sound embedded: it works offline in any browser. Sections whose files are "
    "missing say so and name the command that makes them."
)


def add_arguments(p) -> None:
    p.add_argument("run", metavar="RUN", help="run directory written by `toposcope train`")
    p.add_argument("--baseline", metavar="RUN2", default=None,
                   help="a second run (e.g. trained with --topo-weight 0) shown beside RUN")
    p.add_argument("--data", metavar="DIR", default=None,
                   help="the corpus directory the runs were trained on (adds the data summary)")
    p.add_argument("--out", metavar="FILE", default=None, help="output HTML file (default: RUN/report.html)")
    p.add_argument("--profile", default="gradnap-phone", metavar="NAME",
                   help="profiles/NAME.npz to draw the maps from (default: gradnap-phone)")
    p.add_argument("--title", default=None, help="page title")


def run(args) -> int:
    from ..report import build_report

    out = build_report(args.run, args.baseline, args.out, data=args.data, title=args.title, profile=args.profile)
    print(f"report written to {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
