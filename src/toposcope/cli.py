"""The ``toposcope`` command: wires arguments -> library calls -> files. No computation here.

Each subcommand lives in ``toposcope/commands/<name>.py`` and defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

#: Subcommand name -> module (``import`` subcommands are nested inside ``commands.importers``).
COMMANDS = {
    "demo": "toposcope.commands.demo",
    "synth": "toposcope.commands.synth",
    "import": "toposcope.commands.importers",
    "export": "toposcope.commands.export",
    "align": "toposcope.commands.align",
    "check": "toposcope.commands.check",
    "features": "toposcope.commands.features",
    "train": "toposcope.commands.train",
    "evaluate": "toposcope.commands.evaluate",
    "lm": "toposcope.commands.lm",
    "profile": "toposcope.commands.profile",
    "maps": "toposcope.commands.maps",
    "layout": "toposcope.commands.layout",
    "optimize": "toposcope.commands.optimize",
    "exemplars": "toposcope.commands.exemplars",
    "filters": "toposcope.commands.filters",
    "report": "toposcope.commands.report",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toposcope",
        description="Topographic filter maps, GradNAPs and optimal inputs for convolutional speech recognizers.",
    )
    parser.add_argument("--version", action="version", version=f"toposcope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:  # command not built in this checkout
                continue
            raise
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        # Our errors (CorpusError, ConfigError, AudioError, ...) are ValueErrors with a clear message.
        print(f"toposcope {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
