"""``toposcope demo --quick`` end to end: every stage runs, the second run resumes (skips what is there),
a deleted output is recomputed. Its 3-minute budget is measured in docs/benchmarks.md, not asserted here."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from toposcope.cli import main


def quick_demo(tmp_path_factory) -> Path:
    """Shared ``--quick`` demo directory (see tests/test_report.py): first caller runs it, later ones resume."""
    from toposcope.demo import run_demo

    out = tmp_path_factory.getbasetemp() / "quick-demo"
    run_demo(out, quick=True, progress=False, log=lambda m: None)
    return out


STAGES = ("corpus", "train topo", "train baseline", "evaluate", "profile", "maps", "filters", "optimize", "report")


@pytest.mark.slow
def test_quick_demo_runs_every_stage_then_resumes(tmp_path_factory, capsys):
    out = quick_demo(tmp_path_factory)
    timings = json.loads((out / "demo-timings.json").read_text())
    first = timings["history"][0]
    assert first["quick"] is True and first["config"] == "tiny"
    # The first run did every stage (a number of seconds, not "skipped").
    assert all(isinstance(first["timings_s"][s], (int, float)) for s in STAGES), first["timings_s"]
    print(f"quick demo: {first['timings_s']['total']} s at load {first['load_start']}/{first['load_end']}")

    # Outputs of every stage, both runs.
    assert (out / "corpus" / "manifest.jsonl").is_file()
    for run in ("topo", "baseline"):
        r = out / "runs" / run
        for f in ("config.toml", "checkpoints/best.pt", "checkpoints/last.pt", "metrics.jsonl", "eval/test.json",
                  "profiles/gradnap-phone.npz", "maps/regions.json", "maps/stats.json"):
            assert (r / f).is_file(), f"{run}/{f}"
        assert list((r / "filters").glob("*.png"))
    lam = {run: tomllib.loads((out / "runs" / run / "config.toml").read_text())["train"]["topo_weight"]
           for run in ("topo", "baseline")}
    assert lam["baseline"] == 0.0 and lam["topo"] > 0, lam
    summaries = list((out / "runs" / "topo" / "optimal").glob("*/*/summary.json"))
    assert summaries and all(json.loads(p.read_text())["targets"] for p in summaries)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "</html>" in html

    # Re-running through the CLI resumes: every stage but the report is skipped; a deleted output comes back.
    ev = out / "runs" / "baseline" / "eval" / "test.json"
    before = json.loads(ev.read_text())
    ev.unlink()
    capsys.readouterr()
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    latest = json.loads((out / "demo-timings.json").read_text())["latest"]["timings_s"]
    assert isinstance(latest["evaluate"], (int, float)) and isinstance(latest["report"], (int, float))
    assert all(latest[s] == "skipped" for s in STAGES if s not in ("evaluate", "report")), latest
    after = json.loads(ev.read_text())
    assert after["cer"] == pytest.approx(before["cer"]) and after["wer"] == pytest.approx(before["wer"])
    # The end prints where the report is and the headline numbers, read from the run directories.
    assert str((out / "report.html").resolve()) in printed.out
    assert f"{100 * after['cer']:.1f} %" in printed.out
    assert "skipped" in printed.err and "[9/9] report" in printed.err


def test_demo_cli_rejects_a_bad_training_cap(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "d"), "--train-minutes", "0"]) == 2
    assert "--train-minutes must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_demo_plan_sizes():
    from toposcope.demo import plan

    q, full = plan(True), plan(False)
    assert q.config == "tiny" and q.utterances and q.utterances <= 60
    assert full.config == "small" and full.hours >= 1.0
    assert 2 * full.train_minutes <= 12  # the two trainings leave room for the rest in 20 minutes
