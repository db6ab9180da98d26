"""``toposcope demo``: the whole pipeline on the embedded synthetic corpus, ending in one HTML report.

The demo is a list of :class:`Stage` s (:func:`stages`), each calling library functions (never the CLI)::

    corpus          DIR/corpus/                     synthesize the default corpus (~3 h; --quick: 40 utterances)
    train topo      DIR/runs/topo/                  the topographic model (config ``small-asr``; --quick: ``tiny``);
                                                    the full demo trains the baseline beside it (``side_by_side``)
    train baseline  DIR/runs/baseline/              the same with λ = 0 (skipped when it trained beside the other)
    lm              DIR/lm.json                     character 8-gram LM: train transcripts + fortune pool, minus valid/test
    evaluate        RUN/eval/test.json              CER/WER of both on the held-out voices (greedy; beam + LM)
    profile         RUN/profiles/gradnap-phone.npz  GradNAPs per phone (with per-segment sums), both runs
    maps            RUN/maps/                       maps, regions, statistics (label and position nulls), both runs
    layout          DIR/runs/baseline/maps-som/     post-hoc SOM layout of the baseline (fitted on train), its statistics
    filters         RUN/filters/                    Figure 1A close-ups, both runs
    optimize        DIR/runs/topo/optimal/          optimal inputs of the most responsive regions (topographic run)
    exemplars       DIR/runs/topo/exemplars/        the real windows those regions respond to most, their phones
    report          DIR/report.html                 the self-contained report

A stage whose ``done()`` is true is skipped, so re-running resumes. Training runs under a wall-clock cap
(``max_minutes``; side by side, one thread and twice the cap per model) so the demo keeps its time budget on a
2-core CPU; an interrupted training resumes from ``checkpoints/last.pt``. Stage timings go to ``DIR/demo-timings.json`` (the source of the demo row in
``docs/benchmarks.md``). To add a stage: one :class:`Stage` entry in :func:`stages`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["DemoPlan", "Stage", "plan", "stages", "run_demo", "DemoError", "headline", "format_headline"]

PROFILE_NAME = "gradnap-phone"


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
    # Train the topographic model and the baseline at the same time, one CPU thread and 2 × train_minutes of wall
    # clock each: the same core-minutes per model and the same wall time as one after the other on two threads,
    # but 15-20 % more steps, since two threads on one model run at 75 % of twice one thread's speed
    # (docs/benchmarks/training.md § The two trainings side by side).
    side_by_side: bool = False

    def __post_init__(self):
        if not (self.train_minutes > 0):
            raise ValueError(f"DemoPlan.train_minutes must be > 0, got {self.train_minutes}")
        if self.utterances is None and self.hours is None:
            raise ValueError("DemoPlan needs utterances or hours")
        if self.optimize_groups < 0:
            raise ValueError(f"DemoPlan.optimize_groups must be >= 0, got {self.optimize_groups}")


@dataclass(frozen=True)
class Stage:
    """One demo step: ``done()`` says whether its outputs are there (then it is skipped), ``run()`` makes
    them, ``what`` is the line printed while it runs."""

    name: str
    done: Callable[[], bool]
    run: Callable[[], None]
    what: str


def plan(quick: bool = False) -> DemoPlan:
    if quick:
        return DemoPlan(quick=True, config="tiny", utterances=40, hours=None, train_minutes=0.5, epochs=12,
                        topo_weight=None, optimize_groups=1, map_plots=(False, False))
    # `small-asr` on 3 h: the recipe that meets issue 14's held-out-voice targets in this budget (two 6-minute
    # trainings on 2 cores; docs/benchmarks/training.md § Recipe sweep, round 7). The seed's plain 1-D network
    # is `--config small` (with `--hours 2`, the demo before that change).
    return DemoPlan(quick=False, config="small-asr", utterances=None, hours=3.0, train_minutes=6.0, epochs=None,
                    topo_weight=None, optimize_groups=3, side_by_side=True)


def _say(msg: str) -> None:
    print(f"toposcope demo: {msg}", file=sys.stderr, flush=True)


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


def _maps_done(r: Path) -> bool:
    return (r / "maps" / "regions.json").is_file() and (r / "maps" / "stats.json").is_file()


def _filters_done(r: Path) -> bool:
    return (r / "filters").is_dir() and any((r / "filters").glob("*.png"))


def stages(out: Path, p: DemoPlan, *, progress: bool = True, jobs: int | None = None,
           log: Callable[[str], None] = _say) -> list[Stage]:
    """The demo's stages in order, writing under ``out`` (see the module docstring)."""
    # Import the functions from their modules: ``toposcope.train`` / ``toposcope.evaluate`` name both a
    # submodule and a function, and which one the package attribute holds depends on import order.
    from ._util import torch_threads
    from .analysis.exemplars import exemplars_for_optimal
    from .analysis.layouts import layout_run
    from .analysis.maps import maps_dir, maps_run
    from .analysis.profiles import profile_run
    from .corpus import Corpus
    from .evaluate import evaluate as evaluate_run
    from .synth import synthesize
    from .train import train as train_run

    out = Path(out)
    corpus_dir, runs = out / "corpus", out / "runs"
    topo_dir, base_dir = runs / "topo", runs / "baseline"
    both = (topo_dir, base_dir)
    report_path = out / "report.html"
    lm_path = out / "lm.json"

    def corpus_stage() -> None:
        synthesize(corpus_dir, utterances=p.utterances, hours=p.hours, seed=p.seed, jobs=jobs, progress=progress)
        corpus = Corpus.load(corpus_dir)
        s = corpus.summary()
        log(f"corpus: {len(corpus)} utterances, {s['hours']:.2f} h, {len(s['speakers'])} speakers "
            f"(train {s['splits']['train']['utterances']}, valid {s['splits']['valid']['utterances']}, "
            f"test {s['splits']['test']['utterances']})")

    def train_kwargs(run_dir: Path, weight: float | None, minutes: float) -> dict:
        resume = (run_dir / "checkpoints" / "last.pt").is_file()
        if resume:
            log(f"resuming the interrupted training in {run_dir}")
        return dict(out=str(run_dir), config=None if resume else p.config, topo_weight=weight, epochs=p.epochs,
                    max_minutes=minutes, resume=resume, seed=p.seed)

    def train(run_dir: Path, weight: float | None) -> Callable[[], None]:
        def go() -> None:
            if not p.side_by_side:
                res = train_run(Corpus.load(corpus_dir), progress=progress,
                                **train_kwargs(run_dir, weight, p.train_minutes))
            elif run_dir == topo_dir and not _training_finished(base_dir):
                return train_side_by_side(2 * p.train_minutes)
            else:  # the other one is done (a resumed demo): this one alone, still on one thread
                with torch_threads(1):
                    res = train_run(Corpus.load(corpus_dir), progress=progress,
                                    **train_kwargs(run_dir, weight, 2 * p.train_minutes))
            if res.get("stopped") == "interrupted":
                raise KeyboardInterrupt
        return go

    def train_side_by_side(minutes: float) -> None:
        """The topographic model here and the baseline in a spawned process, one thread each (``side_by_side``)."""
        import multiprocessing as mp

        from .data import extract_features

        extract_features(corpus_dir, p.config, progress=progress)  # once, before two processes read the cache
        base_kw = train_kwargs(base_dir, 0.0, minutes)
        topo_kw = train_kwargs(topo_dir, p.topo_weight, minutes)
        ctx = mp.get_context("spawn")  # not a Pool: its daemonic workers may not start DataLoader workers
        result = ctx.SimpleQueue()
        baseline = ctx.Process(target=_train_one_thread, args=(str(corpus_dir), base_kw, result), name="baseline")
        baseline.start()
        try:  # Ctrl-C reaches both processes; each saves checkpoints/last.pt and stops
            with torch_threads(1):
                topo = train_run(Corpus.load(corpus_dir), progress=progress, **topo_kw)
        finally:
            baseline.join()
        ok, stopped = result.get() if not result.empty() else (False, f"exit code {baseline.exitcode}")
        if not ok:
            raise RuntimeError(f"the baseline's training beside the topographic model failed: {stopped}")
        if "interrupted" in (topo.get("stopped"), stopped):
            raise KeyboardInterrupt

    def language_model() -> None:
        from .lm import lm_for_corpus

        lm = lm_for_corpus(corpus_dir, fortunes=True)
        lm.save(lm_path)
        log(f"language model: {len(lm.texts)} sentences; {lm.meta['dropped_exact']} valid/test sentences and "
            f"{lm.meta['dropped_ngram']} near duplicates of them left out")

    def evaluate() -> None:
        from .lm import CharNgramLM

        corpus, lm = Corpus.load(corpus_dir), CharNgramLM.load(lm_path)  # fitted once for both runs
        for r in both:
            if not (r / "eval" / "test.json").is_file():
                res = evaluate_run(r, corpus, split="test", progress=progress, lm=lm)
                log(f"{r.name}: test CER {100 * res['cer']:.1f} %, WER {100 * res['wer']:.1f} % (greedy); "
                    f"{100 * res['lm']['cer']:.1f} %, {100 * res['lm']['wer']:.1f} % (beam search + LM)")

    def profile() -> None:
        for r in both:
            if not (r / "profiles" / f"{PROFILE_NAME}.npz").is_file():
                profile_run(r, corpus_dir, split=p.profile_split, name=PROFILE_NAME, progress=progress)

    def maps() -> None:
        for r, plots in zip(both, p.map_plots):
            if not _maps_done(r):
                maps_run(r, profile=PROFILE_NAME, plots=plots, progress=progress)

    def filters() -> None:
        from .analysis.filters import write_filters

        for r in both:
            if not _filters_done(r):
                write_filters(r)

    def optimize() -> None:
        from .optimize.run import optimize_run

        res = optimize_run(topo_dir, layers=list(p.optimize_layers) or None, n_groups=p.optimize_groups,
                           data=corpus_dir, progress=progress)
        log(f"optimal inputs for /{'/, /'.join(res['groups'])}/ in {', '.join(res['layers'])}"
            + ("" if res["all_exceed"] else f"; below the data maximum: {', '.join(res['failures'])}"))

    def report() -> None:
        from .report import build_report

        build_report(topo_dir, base_dir, report_path, data=corpus_dir,
                     title=f"toposcope {'quick ' if p.quick else ''}demo: topographic vs. baseline model")

    size = f"{p.utterances} utterances" if p.utterances else f"~{p.hours:g} h"
    return [
        Stage("corpus", lambda: (corpus_dir / "manifest.jsonl").is_file(), corpus_stage,
              f"synthesizing {size} of speech with Festival, Flite and espeak-ng voices into {corpus_dir}"),
        Stage("train topo", lambda: _training_finished(topo_dir), train(topo_dir, p.topo_weight),
              f"training the topographic model into {topo_dir}"
              + (f", and the λ = 0 baseline into {base_dir} beside it (one thread and {2 * p.train_minutes:g} minutes "
                 "each)" if p.side_by_side else "")),
        Stage("train baseline", lambda: _training_finished(base_dir), train(base_dir, 0.0),
              f"training the λ = 0 baseline into {base_dir}"),
        Stage("lm", lm_path.is_file, language_model,
              f"fitting a character language model on text that excludes the valid and test sentences into {lm_path}"),
        Stage("evaluate", lambda: all((r / "eval" / "test.json").is_file() for r in both), evaluate,
              "decoding the held-out test voices with both models (greedy, and beam search with the LM)"),
        Stage("profile", lambda: all((r / "profiles" / f"{PROFILE_NAME}.npz").is_file() for r in both), profile,
              "computing GradNAPs per phone for every gridded layer, both models"),
        Stage("maps", lambda: all(_maps_done(r) for r in both), maps,
              "drawing maps, finding regions, testing against label and position nulls, both models"),
        Stage("layout", lambda: (maps_dir(base_dir, PROFILE_NAME, "som") / "stats.json").is_file(),
              lambda: (layout_run(base_dir, corpus_dir, method="som", fit_split="train", progress=progress),
                       maps_run(base_dir, profile=PROFILE_NAME, layout="som", plots=False, progress=progress)),
              "fitting a post-hoc SOM layout of the baseline on the train split; its statistics on the held-out split"),
        Stage("filters", lambda: all(_filters_done(r) for r in both), filters, "drawing first-layer filter close-ups"),
        Stage("optimize", lambda: (topo_dir / "optimal" / "summary.json").is_file(), optimize,
              "synthesizing optimal inputs for the most responsive regions of the topographic model"),
        Stage("exemplars", lambda: (topo_dir / "exemplars" / "summary.json").is_file(),
              lambda: exemplars_for_optimal(topo_dir, corpus_dir, progress=progress, log=log),
              "finding the real speech windows the optimised regions respond to most (held-out split)"),
        Stage("report", lambda: False, report, f"writing {report_path}"),
    ]


def run_demo(out="toposcope-demo", *, quick: bool = False, progress: bool = True, jobs: int | None = None,
             demo_plan: DemoPlan | None = None, log: Callable[[str], None] = _say) -> dict:
    """Run every stage into ``out``; returns ``{"report", "timings", "headline"}``.

    Stages whose outputs exist are skipped ("skipped" in the timings), so a second call resumes.
    """
    p = demo_plan or plan(quick)
    out = Path(out)
    topo_dir, base_dir = out / "runs" / "topo", out / "runs" / "baseline"
    _check_existing_runs(p, (topo_dir, base_dir))  # before anything is written: a bad config fails here
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "report.html"
    timings: dict[str, float | str] = {}
    load_start = _loadavg()
    todo = stages(out, p, progress=progress, jobs=jobs, log=log)
    cap = (f"the two trainings side by side, one thread and {2 * p.train_minutes:g} min each" if p.side_by_side
           else f"training capped at {p.train_minutes:g} min per model")
    log(f"{'quick ' if p.quick else ''}demo into {out.resolve()} (config {p.config!r}, {cap})")
    t_all = time.monotonic()
    for k, st in enumerate(todo, 1):
        tag = f"[{k}/{len(todo)}] {st.name}"
        if st.done():
            log(f"{tag}: already there, skipped ({st.what})")
            timings[st.name] = "skipped"
            continue
        log(f"{tag}: {st.what} ...")
        t0 = time.monotonic()
        try:
            st.run()
        except DemoError:
            raise
        except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
            raise DemoError(f"stage {st.name!r} failed: {e}\n(re-run `toposcope demo"
                            f"{' --quick' if p.quick else ''} --out {out}` to resume from here)") from e
        dt = time.monotonic() - t0
        timings[st.name] = round(dt, 1)
        log(f"{tag}: done in {dt:.0f} s (total {time.monotonic() - t_all:.0f} s)")

    total = time.monotonic() - t_all
    timings["total"] = round(total, 1)
    head = headline(topo_dir, base_dir)
    _write_timings(out / "demo-timings.json", p, timings, head, load=(load_start, _loadavg()))
    log(f"finished in {total / 60:.1f} min")
    print(format_headline(head, report_path), flush=True)
    return {"report": report_path, "timings": timings, "headline": head}


def _check_existing_runs(p: DemoPlan, run_dirs) -> None:
    """Load ``p.config`` (:class:`~toposcope.config.ConfigError` when it is not a usable config) and raise
    :class:`DemoError` when a run folder the demo would resume or skip holds a model of another config than
    ``p.config`` (a second demo with another ``--config`` into the same folder would otherwise mix them)."""
    import dataclasses

    from .checkpoint import CONFIG_FILE, read_run_config
    from .config import load_config

    want = load_config(p.config).model
    for r in run_dirs:
        if (Path(r) / CONFIG_FILE).is_file():
            have = read_run_config(r).model
            if dataclasses.replace(have, name=want.name) != want:  # the name is the file's stem: not compared
                raise DemoError(f"{r} holds a model of another config ({have.name!r}) than this demo's "
                                f"{p.config!r}: give another --out, remove {r}, or continue those runs with "
                                f"--config {have.name} or the file of that name (the full demo's default was "
                                f"`small` on 2 h until 2026-11-26, `small-asr` on 3 h since)")


def _train_one_thread(corpus_dir: str, kwargs: dict, result) -> None:
    """One training on one torch thread, no progress bar (the baseline of ``side_by_side``, in a spawned
    process); puts ``(True, why it stopped)`` or ``(False, the error)`` on the queue ``result``."""
    from ._util import torch_threads
    from .corpus import Corpus
    from .train import train

    try:
        with torch_threads(1):
            result.put((True, train(Corpus.load(corpus_dir), progress=False, **kwargs).get("stopped")))
    except BaseException as e:  # the parent reports it; KeyboardInterrupt too
        result.put((False, f"{type(e).__name__}: {e}"))
        raise


def _loadavg() -> float | None:
    """1-minute load average (the machine may be shared: timings taken under load are upper bounds)."""
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _write_timings(path: Path, p: DemoPlan, timings: dict, head: dict, load=(None, None)) -> None:
    import platform

    from ._util import read_json, usable_cores, write_json_atomic

    try:
        prev = (read_json(path, missing_ok=True) or {}).get("history", [])
    except (ValueError, AttributeError):
        prev = []
    entry = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": p.quick, "config": p.config,
             "cpus": usable_cores(), "machine": platform.machine(), "load_start": load[0], "load_end": load[1],
             "timings_s": timings}
    write_json_atomic(path, {"latest": entry, "headline": head, "history": prev + [entry]})


def headline(topo_dir, base_dir) -> dict:
    """The numbers the demo prints at the end, read back from the run directories (public reader):
    per run CER/WER and per layer the phone-specific tests (``share_phone_specific``, label-null p), the
    functional and weight S̄ with their position-null means, and the map-smoothness share."""
    from ._util import read_json
    from .report.reader import clustered_of, stat_block, stat_value, stats_layers

    out = {}
    for key, r in (("topo", Path(topo_dir)), ("baseline", Path(base_dir))):
        e = read_json(r / "eval" / "test.json", missing_ok=True) or {}
        st = stats_layers(read_json(r / "maps" / "stats.json", missing_ok=True))

        def block(name: str, field: str) -> dict:
            return {l: b.get(field) for l, v in st.items() if (b := stat_block(v, name)) is not None}

        out[key] = {"cer": e.get("cer"), "wer": e.get("wer"),
                    "lm_cer": (e.get("lm") or {}).get("cer"), "lm_wer": (e.get("lm") or {}).get("wer"),
                    "phone_specific": {l: x for l, v in st.items()
                                       if (x := stat_value(v, "share_phone_specific")) is not None},
                    "label_null_p": block("label_null", "p"),
                    "label_null_observed": block("label_null", "observed"),
                    "label_null_mean": block("label_null", "mean"),
                    "functional": block("functional_similarity", "observed"),
                    "functional_null": block("functional_similarity", "mean"),
                    "similarity": block("s_bar", "observed"),
                    "null": block("s_bar", "mean"),
                    "clustered": {l: x for l, v in st.items() if (x := clustered_of(v)) is not None}}
    return out


def format_headline(head: dict, report_path: Path, alpha: float = 0.05) -> str:
    """The demo's closing lines: accuracy, then the phone-specific tests (label null), topo beside baseline."""
    def fin(x) -> bool:
        try:
            return math.isfinite(float(x))
        except (TypeError, ValueError):
            return False

    def pct(x):
        return "n/a" if not fin(x) else f"{100 * float(x):.1f} %"

    def num(x):
        return "n/a" if not fin(x) else f"{float(x):.3f}"

    def mean(d: dict):
        v = [float(x) for x in (d or {}).values() if fin(x)]
        return sum(v) / len(v) if v else None

    def sig(d: dict) -> str:
        v = [float(x) for x in (d or {}).values() if fin(x)]
        return "n/a" if not v else f"{sum(x < alpha for x in v)} of {len(v)}"

    t, b = head.get("topo", {}), head.get("baseline", {})
    lines = [f"report: {Path(report_path).resolve()}", "",
             f"{'':<34}{'topographic':>14}{'baseline (λ=0)':>16}"]

    def row(name: str, f, key: str) -> None:
        lines.append(f"{name:<34}{f(t.get(key)):>14}{f(b.get(key)):>16}")

    row("test CER (greedy)", pct, "cer")
    row("test WER (greedy)", pct, "wer")
    if t.get("lm_cer") is not None or b.get("lm_cer") is not None:
        row("test CER (beam search + LM)", pct, "lm_cer")
        row("test WER (beam search + LM)", pct, "lm_wer")
    row("phone-specific maps (mean)", lambda d: pct(mean(d)), "phone_specific")
    row(f"layers beyond label null (p<{alpha:g})", sig, "label_null_p")
    row("  mean Moran's I (mean)", lambda d: num(mean(d)), "label_null_observed")
    row("  under permuted labels", lambda d: num(mean(d)), "label_null_mean")
    row("functional S̄ (mean)", lambda d: num(mean(d)), "functional")
    row("  shuffled-position null", lambda d: num(mean(d)), "functional_null")
    row("weight S̄ (mean)", lambda d: num(mean(d)), "similarity")
    row("  shuffled-position null", lambda d: num(mean(d)), "null")
    return "\n".join(lines)
