"""``toposcope demo``: the whole pipeline on the embedded synthetic corpus, ending in one HTML report.

Stages (each skipped when its outputs are already there, so re-running resumes)::

    corpus      DIR/corpus/                   synthesize the default corpus (~2 h; --quick: 40 utterances)
    train       DIR/runs/topo/                the topographic model (config ``small``; --quick: ``tiny``)
    train       DIR/runs/baseline/            the same with λ = 0
    evaluate    RUN/eval/test.json            CER/WER of both on the held-out voices
    profile     RUN/profiles/gradnap-phone.npz  GradNAPs per phone, both runs
    maps        RUN/maps/                     maps, regions, statistics against the permutation null, both runs
    filters     RUN/filters/                  Figure 1A close-ups, both runs
    optimize    DIR/runs/topo/optimal/        optimal inputs of the most responsive regions (topographic run)
    report      DIR/report.html               the self-contained report

Training runs under a wall-clock cap (``max_minutes``) so the demo keeps its time budget on a 2-core
CPU; an interrupted training resumes from ``checkpoints/last.pt``. Stage timings go to
``DIR/demo-timings.json`` (the source of the demo row in ``docs/benchmarks.md``).
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["DemoPlan", "plan", "run_demo", "DemoError", "headline"]


class DemoError(RuntimeError):
    """A demo stage failed; the message names the stage and how to continue."""


@dataclass(frozen=True)
class DemoPlan:
    """What the demo does: sizes, configs and time caps (``plan(quick)`` gives the two shipped ones)."""

    quick: bool
    config: str
    utterances: int | None  # None: the synthesizer's default size (hours)
    hours: float | None
    train_minutes: float  # wall-clock cap of each training run
    epochs: int | None  # None: the config's own
    topo_weight: float | None  # None: the config's own (the "λ default")
    optimize_groups: int  # phones whose regions get optimal inputs (the most distinct maps)
    optimize_layers: tuple[str, ...] = ("conv2",)  # the seed's Figure 1B shows the second layer
    map_plots: tuple[bool, bool] = (True, False)  # PNG maps for (topo, baseline); the report draws its own
    profile_split: str = "test"
    seed: int = 0


def plan(quick: bool = False) -> DemoPlan:
    if quick:
        return DemoPlan(quick=True, config="tiny", utterances=40, hours=None, train_minutes=0.5, epochs=12,
                        topo_weight=None, optimize_groups=1, map_plots=(False, False))
    return DemoPlan(quick=False, config="small", utterances=None, hours=2.0, train_minutes=6.0, epochs=None,
                    topo_weight=None, optimize_groups=3)


def _say(msg: str) -> None:
    print(f"toposcope demo: {msg}", file=sys.stderr, flush=True)


def _cli(argv: list[str], stage: str) -> None:
    """Run a ``toposcope`` subcommand in-process; a non-zero exit is a :class:`DemoError`."""
    from .cli import main

    rc = main(argv)
    if rc != 0:
        raise DemoError(f"stage {stage!r} failed: `toposcope {' '.join(argv)}` exited with status {rc}")


def _training_finished(run_dir: Path) -> bool:
    """True when ``RUN/checkpoints/last.pt`` records a training that ran to its end (epochs, max_steps
    or its wall-clock budget), False when there is nothing or an interrupted run to resume."""
    from .checkpoint import checkpoint_path, load_checkpoint

    last = checkpoint_path(run_dir, "last")
    if not last.is_file() or not checkpoint_path(run_dir, "best").is_file():
        return False
    st = load_checkpoint(last)
    tr = st["config"].get("train", {})
    sched = st.get("scheduler", {})
    if int(st.get("epoch", 0)) >= int(tr.get("epochs", 0)):
        return True
    if tr.get("max_steps") and int(st.get("step", 0)) >= int(tr["max_steps"]):
        return True
    budget = float(sched.get("budget_s", 0.0) or 0.0)
    return budget > 0 and float(sched.get("elapsed_s", 0.0)) >= budget


def run_demo(out="toposcope-demo", *, quick: bool = False, progress: bool = True, jobs: int | None = None,
             demo_plan: DemoPlan | None = None, log: Callable[[str], None] = _say) -> dict:
    """Run every stage into ``out``; returns ``{"report", "timings", "headline"}``.

    Stages whose outputs exist are skipped ("skipped" in the timings), so a second call resumes.
    """
    # Import the functions from their modules: ``toposcope.train`` / ``toposcope.evaluate`` name both a
    # submodule and a function, and which one the package attribute holds depends on import order.
    from .corpus import Corpus
    from .evaluate import evaluate as evaluate_run
    from .synth import synthesize
    from .train import train as train_run

    p = demo_plan or plan(quick)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus_dir, runs = out / "corpus", out / "runs"
    topo_dir, base_dir = runs / "topo", runs / "baseline"
    timings: dict[str, float | str] = {}
    load_start = _loadavg()
    stages = ["corpus", "train topo", "train baseline", "evaluate", "profile", "maps", "filters", "optimize",
              "report"]
    t_all = time.monotonic()

    def stage(name: str, done: bool, fn: Callable[[], None], what: str) -> None:
        k = stages.index(name) + 1
        if done:
            log(f"[{k}/{len(stages)}] {name}: already there, skipped ({what})")
            timings[name] = "skipped"
            return
        log(f"[{k}/{len(stages)}] {name}: {what} ...")
        t0 = time.monotonic()
        try:
            fn()
        except DemoError:
            raise
        except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
            raise DemoError(f"stage {name!r} failed: {e}\n(re-run `toposcope demo"
                            f"{' --quick' if p.quick else ''} --out {out}` to resume from here)") from e
        dt = time.monotonic() - t0
        timings[name] = round(dt, 1)
        log(f"[{k}/{len(stages)}] {name}: done in {dt:.0f} s (total {time.monotonic() - t_all:.0f} s)")

    log(f"{'quick ' if p.quick else ''}demo into {out.resolve()} (config {p.config!r}, training capped at "
        f"{p.train_minutes:g} min per model)")

    # 1. corpus ------------------------------------------------------------------------------------------
    size = f"{p.utterances} utterances" if p.utterances else f"~{p.hours:g} h"
    stage("corpus", (corpus_dir / "manifest.jsonl").is_file(),
          lambda: synthesize(corpus_dir, utterances=p.utterances, hours=p.hours, seed=p.seed, jobs=jobs,
                                       progress=progress),
          f"synthesizing {size} of speech with Festival, Flite and espeak-ng voices into {corpus_dir}")
    corpus = Corpus.load(corpus_dir)
    s = corpus.summary()
    log(f"corpus: {len(corpus)} utterances, {s['hours']:.2f} h, {len(s['speakers'])} speakers "
        f"(train {s['splits']['train']['utterances']}, valid {s['splits']['valid']['utterances']}, "
        f"test {s['splits']['test']['utterances']})")

    # 2-3. training -----------------------------------------------------------------------------------------
    def train(run_dir: Path, weight: float | None) -> Callable[[], None]:
        def go() -> None:
            resume = (run_dir / "checkpoints" / "last.pt").is_file()
            if resume:
                log(f"resuming the interrupted training in {run_dir}")
            res = train_run(corpus, run_dir, config=None if resume else p.config, topo_weight=weight,
                                  epochs=p.epochs, max_minutes=p.train_minutes, resume=resume, seed=p.seed,
                                  progress=progress)
            if res.get("stopped") == "interrupted":
                raise KeyboardInterrupt
        return go

    stage("train topo", _training_finished(topo_dir), train(topo_dir, p.topo_weight),
          f"training the topographic model into {topo_dir}")
    stage("train baseline", _training_finished(base_dir), train(base_dir, 0.0),
          f"training the λ = 0 baseline into {base_dir}")

    both = (topo_dir, base_dir)

    # 4. evaluate ------------------------------------------------------------------------------------------------
    def evaluate() -> None:
        for r in both:
            if not (r / "eval" / "test.json").is_file():
                res = evaluate_run(r, corpus, split="test", progress=progress)
                log(f"{r.name}: test CER {100 * res['cer']:.1f} %, WER {100 * res['wer']:.1f} %")
    stage("evaluate", all((r / "eval" / "test.json").is_file() for r in both), evaluate,
          "decoding the held-out test voices with both models")

    # 5. profiles ----------------------------------------------------------------------------------------------
    prof_name = "gradnap-phone"

    def profile() -> None:
        for r in both:
            if not (r / "profiles" / f"{prof_name}.npz").is_file():
                _cli(["profile", str(r), "--data", str(corpus_dir)] + ([] if progress else ["--no-progress"]),
                     "profile")
    stage("profile", all((r / "profiles" / f"{prof_name}.npz").is_file() for r in both), profile,
          "computing GradNAPs per phone for every gridded layer, both models")

    # 6. maps + statistics -----------------------------------------------------------------------------------
    def maps_done(r: Path) -> bool:
        return (r / "maps" / "regions.json").is_file() and (r / "maps" / "stats.json").is_file()

    def maps() -> None:
        for r, plots in zip(both, p.map_plots):
            if not maps_done(r):
                _cli(["maps", str(r)] + ([] if plots else ["--no-plots"]) + ([] if progress else ["--no-progress"]),
                     "maps")
    stage("maps", all(maps_done(r) for r in both), maps,
          "drawing maps, finding regions, testing S̄ and Moran's I against permutation nulls, both models")

    # 7. filters (Figure 1A) -------------------------------------------------------------------------------
    def filters_done(r: Path) -> bool:
        return (r / "filters").is_dir() and any((r / "filters").glob("*.png"))

    def filters() -> None:
        from .cli import COMMANDS

        try:
            importlib.import_module(COMMANDS["filters"])
        except ModuleNotFoundError:
            log("`toposcope filters` is not part of this build: no filter close-ups (the report says so)")
            return
        for r in both:
            if not filters_done(r):
                _cli(["filters", str(r)], "filters")
    stage("filters", all(filters_done(r) for r in both), filters, "drawing first-layer filter close-ups")

    # 8. optimal inputs ---------------------------------------------------------------------------------------
    def optimize_done() -> bool:
        return (topo_dir / "optimal" / "summary.json").is_file()

    def optimize() -> None:
        from .optimize.run import optimize_run

        res = optimize_run(topo_dir, layers=list(p.optimize_layers) or None, n_groups=p.optimize_groups,
                           data=corpus_dir, progress=progress)
        log(f"optimal inputs for /{'/, /'.join(res['groups'])}/ in {', '.join(res['layers'])}"
            + ("" if res["all_exceed"] else f"; below the data maximum: {', '.join(res['failures'])}"))
    stage("optimize", optimize_done(), optimize,
          "synthesizing optimal inputs for the most responsive regions of the topographic model")

    # 9. report ----------------------------------------------------------------------------------------------------
    report_path = out / "report.html"

    def report() -> None:
        from .report import build_report

        build_report(topo_dir, base_dir, report_path, data=corpus,
                     title=f"toposcope {'quick ' if p.quick else ''}demo: topographic vs. baseline model")
    stage("report", False, report, f"writing {report_path}")

    total = time.monotonic() - t_all
    timings["total"] = round(total, 1)
    head = headline(topo_dir, base_dir)
    _write_timings(out / "demo-timings.json", p, timings, head, load=(load_start, _loadavg()))
    log(f"finished in {total / 60:.1f} min")
    print(format_headline(head, report_path), flush=True)
    return {"report": report_path, "timings": timings, "headline": head}


def _loadavg() -> float | None:
    """1-minute load average (the machine may be shared: timings taken under load are upper bounds)."""
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _write_timings(path: Path, p: DemoPlan, timings: dict, head: dict, load=(None, None)) -> None:
    import platform

    from .checkpoint import write_text_atomic

    prev = []
    if path.is_file():
        try:
            prev = json.loads(path.read_text()).get("history", [])
        except (json.JSONDecodeError, AttributeError):
            prev = []
    entry = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": p.quick, "config": p.config,
             "cpus": _cpus(), "machine": platform.machine(), "load_start": load[0], "load_end": load[1],
             "timings_s": timings}
    write_text_atomic(path, json.dumps({"latest": entry, "headline": head, "history": prev + [entry]}, indent=1) + "\n")


def _cpus() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def headline(topo_dir, base_dir) -> dict:
    """The numbers the demo prints at the end, read back from the run directories."""
    from .report import _clustered_of, _read_json, _similarity_of, _stats_layers

    out = {}
    for key, r in (("topo", Path(topo_dir)), ("baseline", Path(base_dir))):
        e = _read_json(r / "eval" / "test.json") or {}
        st = _stats_layers(_read_json(r / "maps" / "stats.json"))
        sims = {l: _similarity_of(v) for l, v in st.items()}
        shares = {l: _clustered_of(v) for l, v in st.items()}
        out[key] = {"cer": e.get("cer"), "wer": e.get("wer"),
                    "similarity": {l: s.get("observed") for l, s in sims.items() if s},
                    "null": {l: s.get("mean") for l, s in sims.items() if s},
                    "clustered": {l: v for l, v in shares.items() if v is not None}}
    return out


def format_headline(head: dict, report_path: Path) -> str:
    def pct(x):
        return "n/a" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):.1f} %"

    def mean(d: dict):
        v = [float(x) for x in d.values() if x is not None]
        return sum(v) / len(v) if v else None

    lines = [f"report: {Path(report_path).resolve()}", "",
             f"{'':<26}{'topographic':>14}{'baseline (λ=0)':>16}"]
    t, b = head.get("topo", {}), head.get("baseline", {})
    lines.append(f"{'test CER':<26}{pct(t.get('cer')):>14}{pct(b.get('cer')):>16}")
    lines.append(f"{'test WER':<26}{pct(t.get('wer')):>14}{pct(b.get('wer')):>16}")

    def num(x):
        return "n/a" if x is None else f"{x:.3f}"
    lines.append(f"{'mean S̄ over layers':<26}{num(mean(t.get('similarity', {}))):>14}"
                 f"{num(mean(b.get('similarity', {}))):>16}")
    lines.append(f"{'  shuffled-position null':<26}{num(mean(t.get('null', {}))):>14}{num(mean(b.get('null', {}))):>16}")
    lines.append(f"{'clustered phones (mean)':<26}{pct(mean(t.get('clustered', {}))):>14}"
                 f"{pct(mean(b.get('clustered', {}))):>16}")
    return "\n".join(lines)
