"""The command line (toposcope.cli): every command's --help, unknown commands, and the error convention:
exit code 2 and a message starting ``toposcope COMMAND: error:`` for usage errors and library errors alike."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from toposcope import __version__
from toposcope.cli import COMMANDS, build_parser, main


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """``main(argv)`` -> (exit code, stdout, stderr); argparse's own exits (``--help``, usage errors) included."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    out = capsys.readouterr()
    return code, out.out, out.err


def _command_paths(parser: argparse.ArgumentParser, prefix=()) -> list[tuple[str, ...]]:
    """Every (sub)command path of the parser tree: ("train",), ("import", "timit"), ..."""
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.append(prefix + (name,))
                paths.extend(_command_paths(sub, prefix + (name,)))
    return paths


PATHS = _command_paths(build_parser())


def test_every_registered_command_is_built():
    top = {p[0] for p in PATHS}
    assert top == set(COMMANDS), set(COMMANDS) ^ top  # a command module that fails to import shows here
    assert {"train", "evaluate", "profile", "maps", "report", "import"} <= top
    assert ("import", "timit") in PATHS and ("import", "textgrid") in PATHS and ("import", "lab") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_help_of_every_command(path, capsys):
    code, out, err = run_cli([*path, "--help"], capsys)
    assert code == 0, err
    assert out.startswith(f"usage: toposcope {' '.join(path)}"), out[:200]
    assert "-h, --help" in out and not err


def test_top_level_help_version_and_no_command(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and all(name in out for name in COMMANDS)
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"toposcope {__version__}"
    code, out, _ = run_cli([], capsys)
    assert code == 2 and out.startswith("usage: toposcope")


def test_unknown_command(capsys):
    code, out, err = run_cli(["trian", "--data", "x"], capsys)
    assert code == 2 and not out
    assert "toposcope: error: argument COMMAND: invalid choice: 'trian'" in err


@pytest.mark.parametrize("argv, where", [
    (["train", "--out", "x"], "the following arguments are required: --data"),
    (["evaluate"], "the following arguments are required: RUN, --data"),
    (["evaluate", "r", "--data", "d", "--split", "dev"], "argument --split: invalid choice: 'dev'"),
    (["train", "--data", "d", "--out", "o", "--epochs", "many"], "argument --epochs: invalid int value"),
    (["import", "wav2vec", "d", "--out", "o"], "argument FORMAT: invalid choice: 'wav2vec'"),
    (["demo", "--jobs", "all"], "argument --jobs: invalid int value"),
])
def test_usage_errors_exit_2_with_the_command_prefix(argv, where, capsys):
    code, out, err = run_cli(argv, capsys)
    prog = " ".join(argv[:2]) if argv[0] == "import" and argv[1] in ("timit", "textgrid", "lab") else argv[0]
    assert code == 2 and not out
    assert f"toposcope {prog}: error: {where}" in err, err


def _library_error_argv(tmp_path) -> dict[str, list[str]]:
    """For each command, arguments that parse but name something missing: the library raises our error."""
    nope = str(tmp_path / "nope")
    return {
        "check": ["check", nope],
        "train": ["train", "--data", nope, "--out", str(tmp_path / "out"), "--no-progress"],
        "evaluate": ["evaluate", nope, "--data", nope, "--no-progress"],
        "lm": ["lm", "--data", nope, "--out", str(tmp_path / "lm.json")],
        "profile": ["profile", nope, "--data", nope, "--no-progress"],
        "maps": ["maps", nope],
        "layout": ["layout", nope],
        "optimize": ["optimize", nope, "--layer", "conv1"],
        "exemplars": ["exemplars", nope, "--layer", "conv1"],
        "filters": ["filters", nope],
        "report": ["report", nope],
        "features": ["features", nope],
        "import": ["import", "lab", nope, "--out", str(tmp_path / "imported"), "--no-progress"],
        "align": ["align", "--audio", nope, "--transcripts", nope + ".tsv", "--out", str(tmp_path / "aligned")],
        "export": ["export", "lhotse", nope, "--out", str(tmp_path / "exported")],
        "synth": ["synth", "--utterances", "3", "--out", str(tmp_path / "a_file"), "--no-progress"],
    }


# ``demo`` has no argument naming an input; ``check`` reports a missing corpus as a problem (exit 1, below).
@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in ("demo", "check")])
def test_library_errors_exit_2_with_the_command_prefix(command, tmp_path, capsys):
    argv = _library_error_argv(tmp_path).get(command)
    if argv is None:
        pytest.fail(f"add a failing invocation of the new command {command!r} to _library_error_argv")
    (tmp_path / "a_file").write_text("not a folder")
    code, out, err = run_cli(argv, capsys)
    assert code == 2, (code, out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"toposcope {command}") and ": error: " in last, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "imported").exists()


def test_check_reports_problems_with_exit_1(tmp_path, capsys):
    code, out, err = run_cli(["check", str(tmp_path / "nope"), "--no-progress"], capsys)
    assert code == 1 and "1 problem(s):" in out and "nope: corpus directory not found" in out


def test_python_dash_m_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "toposcope", "maps", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("toposcope maps: error:"), proc.stderr
