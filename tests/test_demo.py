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


STAGES = ("corpus", "train topo", "train baseline", "lm", "evaluate", "profile", "maps", "layout", "filters", "optimize",
          "exemplars", "report")


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
    # the baseline's post-hoc layout, fitted on train and judged on the held-out profile
    lay = json.loads((out / "runs" / "baseline" / "layouts" / "conv1-som.json").read_text())
    assert lay["fit_split"] == "train" and sorted(lay["cell_of_unit"]) == list(range(len(lay["cell_of_unit"])))
    judged = json.loads((out / "runs" / "baseline" / "maps-som" / "stats.json").read_text())
    assert judged["layout"]["judged_on_fitting_split"] is False
    assert "Learned vs post-hoc" in (out / "report.html").read_text(encoding="utf-8")
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
    assert "skipped" in printed.err and f"[{len(STAGES)}/{len(STAGES)}] report" in printed.err


def test_demo_cli_rejects_a_bad_training_cap(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "d"), "--train-minutes", "0"]) == 2
    assert "--train-minutes must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_demo_cli_passes_the_corpus_size(tmp_path, capsys, monkeypatch):
    import toposcope.demo

    seen = []
    monkeypatch.setattr(toposcope.demo, "run_demo", lambda out, demo_plan, **kw: seen.append(demo_plan))
    assert main(["demo", "--out", str(tmp_path / "d"), "--hours", "3", "--train-minutes", "5"]) == 0
    assert seen[-1].hours == 3.0 and seen[-1].utterances is None and seen[-1].train_minutes == 5.0
    assert seen[-1].config == "small-asr" and seen[-1].side_by_side
    assert main(["demo", "--quick", "--out", str(tmp_path / "d"), "--hours", "0.1"]) == 0
    assert seen[-1].hours == 0.1 and seen[-1].utterances is None and seen[-1].config == "tiny"
    assert main(["demo", "--out", str(tmp_path / "d"), "--config", "small", "--hours", "2", "--one-after-the-other"]) == 0
    assert seen[-1].config == "small" and seen[-1].hours == 2.0  # the seed's plain 1-D network, the old demo
    assert not seen[-1].side_by_side
    assert main(["demo", "--out", str(tmp_path / "d"), "--hours", "-1"]) == 2
    assert "--hours must be > 0" in capsys.readouterr().err and len(seen) == 3


def test_demo_plan_sizes():
    from toposcope.demo import plan

    q, full = plan(True), plan(False)
    assert q.config == "tiny" and q.utterances and q.utterances <= 60
    assert full.config == "small-asr" and full.hours == 3.0  # issue 14's recipe (docs/benchmarks/training.md)
    assert full.side_by_side and not q.side_by_side
    assert 2 * full.train_minutes <= 12  # the two trainings leave room for the rest in 20 minutes


def test_demo_is_a_list_of_stages_whose_done_tests_read_the_outputs(tmp_path):
    from toposcope.demo import Stage, plan, stages

    st = stages(tmp_path, plan(True), progress=False, log=lambda m: None)
    assert tuple(s.name for s in st) == STAGES
    assert all(isinstance(s, Stage) and callable(s.done) and callable(s.run) and s.what for s in st)
    done = {s.name: s.done() for s in st}
    assert not any(done.values())  # an empty folder: everything to do (the report always runs)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "manifest.jsonl").write_text("")
    for r in ("topo", "baseline"):
        (tmp_path / "runs" / r / "eval").mkdir(parents=True)
        (tmp_path / "runs" / r / "eval" / "test.json").write_text("{}")
    (tmp_path / "runs" / "topo" / "maps").mkdir()
    for f in ("regions.json", "stats.json"):
        (tmp_path / "runs" / "topo" / "maps" / f).write_text("{}")
    (tmp_path / "lm.json").write_text("{}")
    done = {s.name: s.done() for s in st}
    assert done["corpus"] and done["evaluate"] and done["lm"]
    assert not done["maps"]  # the baseline's maps are missing
    assert not done["report"] and not done["train topo"]


def _run_with_stats(d, cer, layers, lm_cer=None):
    (d / "eval").mkdir(parents=True)
    lm = {"lm": {"cer": lm_cer, "wer": 2 * lm_cer}} if lm_cer is not None else {}
    (d / "eval" / "test.json").write_text(json.dumps({"cer": cer, "wer": 2 * cer, **lm}))
    (d / "maps").mkdir()
    (d / "maps" / "stats.json").write_text(json.dumps({"layers": layers}))


def test_headline_leads_with_the_phone_specific_tests_beside_the_baseline(tmp_path):
    from toposcope.demo import format_headline, headline

    def layer(share, p, i, i0, f, f0, s, s0, clustered):
        return {"share_phone_specific": share, "label_null": {"observed": i, "mean": i0, "p": p},
                "functional_similarity": {"observed": f, "mean": f0}, "s_bar": {"observed": s, "mean": s0},
                "share_clustered": clustered}

    _run_with_stats(tmp_path / "topo", 0.284, {"conv1": layer(0.10, 0.01, 0.13, 0.11, 0.5, 0.1, 0.8, 0.1, 0.9),
                                               "conv2": layer(0.30, 0.20, 0.10, 0.10, 0.3, 0.1, 0.9, 0.1, 1.0)},
                    lm_cer=0.25)
    # the baseline is an old run: no label-null keys
    _run_with_stats(tmp_path / "base", 0.270, {"conv1": {"s_bar": {"observed": 0.12, "mean": 0.1},
                                                         "share_clustered": 0.1}})
    head = headline(tmp_path / "topo", tmp_path / "base")
    assert head["topo"]["phone_specific"] == {"conv1": 0.10, "conv2": 0.30}
    assert head["topo"]["label_null_p"] == {"conv1": 0.01, "conv2": 0.20}
    assert head["baseline"]["phone_specific"] == {} and head["baseline"]["similarity"] == {"conv1": 0.12}
    text = format_headline(head, tmp_path / "report.html")
    rows = {l[:34].strip(): l[34:].split() for l in text.splitlines()[3:]}
    assert rows["test CER (greedy)"] == ["28.4", "%", "27.0", "%"]
    assert rows["test WER (beam search + LM)"] == ["50.0", "%", "n/a"]  # the old baseline run has no LM block
    assert rows["phone-specific maps (mean)"] == ["20.0", "%", "n/a"]
    assert rows["layers beyond label null (p<0.05)"] == ["1", "of", "2", "n/a"]
    assert rows["mean Moran's I (mean)"] == ["0.115", "n/a"] and rows["under permuted labels"] == ["0.105", "n/a"]
    assert rows["functional S̄ (mean)"] == ["0.400", "n/a"]
    assert rows["weight S̄ (mean)"] == ["0.850", "0.120"]
    assert "clustered" not in text  # the position-null share is map smoothness, not the headline


def test_layout_stage_fits_the_baselines_layout_and_judges_it_held_out(tiny_run, tiny_corpus, tmp_path):
    """The demo's `layout` stage on a finished tiny baseline: SOM layout fitted on train, stats on test."""
    import shutil

    from toposcope.analysis.profiles import profile_run
    from toposcope.demo import PROFILE_NAME, plan, stages

    out = tmp_path / "demo"
    base = out / "runs" / "baseline"
    shutil.copytree(tiny_run, base, ignore=shutil.ignore_patterns("profiles", "layouts", "maps*", "optimal*"))
    (out / "corpus").symlink_to(tiny_corpus.root, target_is_directory=True)
    profile_run(base, out / "corpus", split="test", name=PROFILE_NAME, progress=False)
    stage = {s.name: s for s in stages(out, plan(True), progress=False, log=lambda m: None)}["layout"]
    assert not stage.done()
    stage.run()
    assert stage.done()
    lay = json.loads((base / "layouts" / "conv1-som.json").read_text())
    assert lay["fit_split"] == "train" and sorted(lay["cell_of_unit"]) == list(range(len(lay["cell_of_unit"])))
    judged = json.loads((base / "maps-som" / "stats.json").read_text())
    assert judged["layout"]["judged_on_fitting_split"] is False and judged["profile_split"] == "test"


def test_demo_refuses_runs_of_another_config_and_the_cli_takes_one(tiny_run, tmp_path, capsys, monkeypatch):
    import dataclasses
    import shutil

    from toposcope import demo
    from toposcope.checkpoint import dump_toml
    from toposcope.config import load_config

    runs = tmp_path / "out" / "runs"
    shutil.copytree(tiny_run, runs / "topo", ignore=shutil.ignore_patterns(".lock", "checkpoints"))
    q = demo.plan(True)  # config "tiny", as tiny_run
    demo._check_existing_runs(q, (runs / "topo", runs / "baseline"))  # same model: fine (no baseline yet: fine)
    with pytest.raises(demo.DemoError, match="holds a model of another config .'tiny'. than this demo's 'small'.*"
                                             "continue those runs with --config tiny"):
        demo._check_existing_runs(dataclasses.replace(q, config="small"), (runs / "topo",))
    # a TOML of the same model under another name is the same model
    same = tmp_path / "mytiny.toml"
    same.write_text(dump_toml(load_config("tiny").to_dict()))
    demo._check_existing_runs(dataclasses.replace(q, config=str(same)), (runs / "topo",))
    # the CLI: a bad --config fails before anything is written; a good one reaches the plan
    assert main(["demo", "--out", str(tmp_path / "e"), "--config", "nope"]) == 2
    assert "unknown config 'nope'" in capsys.readouterr().err and not (tmp_path / "e").exists()
    seen = {}
    monkeypatch.setattr(demo, "run_demo", lambda out, demo_plan, **kw: seen.setdefault("plan", demo_plan))
    assert main(["demo", "--quick", "--out", str(tmp_path / "d"), "--config", str(same)]) == 0
    assert seen["plan"].config == str(same) and seen["plan"].quick


@pytest.mark.slow
def test_side_by_side_trains_both_models_at_once_on_one_thread_each(tmp_path, monkeypatch):
    import dataclasses

    monkeypatch.setenv("TOPOSCOPE_DATA_WORKERS", "1")  # as on the full corpus: the spawned training has workers too

    import torch

    from toposcope.checkpoint import read_run_config
    from toposcope.demo import _training_finished, plan, stages

    p = dataclasses.replace(plan(True), side_by_side=True, train_minutes=0.25)
    st = {s.name: s for s in stages(tmp_path, p, progress=False, log=lambda m: None)}
    st["corpus"].run()
    threads = torch.get_num_threads()
    st["train topo"].run()  # trains both
    assert torch.get_num_threads() == threads  # restored
    runs = tmp_path / "runs"
    assert _training_finished(runs / "topo") and _training_finished(runs / "baseline")
    assert st["train baseline"].done()  # so the demo skips it
    for run, lam in (("topo", read_run_config(runs / "topo").train.topo_weight), ("baseline", 0.0)):
        cfg = read_run_config(runs / run)
        assert cfg.train.topo_weight == lam and cfg.train.max_minutes == 0.5  # twice the cap: one thread each
    assert read_run_config(runs / "topo").train.topo_weight > 0
    assert "beside it (one thread and 0.5 minutes each)" in st["train topo"].what
