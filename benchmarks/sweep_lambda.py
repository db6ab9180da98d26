"""λ sweep: accuracy cost vs. topography of the topographic regularizer (issue 4).

For each λ, train the ``small`` config (or ``--config``) on a corpus for a fixed budget, then report the
valid CER/WER (unseen sentences), the test CER/WER (unseen voices) of the best checkpoint, and S̄ of
every gridded layer. The table is written between ``<!-- sweep:begin -->`` and ``<!-- sweep:end -->``
in ``docs/benchmarks/training.md`` (``--doc``), with the machine load while it ran.

Budget: ``--minutes M`` (wall clock per run, ``train(max_minutes=M)``; what a quiet machine should
use) or ``--steps N`` (a fixed number of optimizer steps: independent of machine load, for a shared
machine). ``--jobs J`` runs J values at once, each with ``--threads`` torch threads.

    .venv/bin/toposcope synth --out /tmp/hour --hours 1
    .venv/bin/python benchmarks/sweep_lambda.py --data /tmp/hour --out /tmp/sweep --minutes 6
    .venv/bin/python benchmarks/sweep_lambda.py --data /tmp/hour --out /tmp/sweep --steps 1200 --jobs 4 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BEGIN, END = "<!-- sweep:begin -->", "<!-- sweep:end -->"


def run_one(data: str, out: str, config: str, lam: float, minutes: float | None, steps: int | None,
            threads: int | None, seed: int) -> dict:
    import torch

    from toposcope.checkpoint import load_run
    from toposcope.evaluate import evaluate
    from toposcope.topography import TopographicRegularizer
    from toposcope.train import train

    if threads:
        torch.set_num_threads(threads)
    t0, c0 = time.perf_counter(), time.process_time()
    res = train(data, out, config=config, topo_weight=lam, epochs=100000, max_minutes=minutes, max_steps=steps,
                seed=seed, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    run = load_run(out)
    sims = TopographicRegularizer(run.model, weight=0.0, neighborhood=run.config.train.neighborhood,
                                  boundary=run.config.train.boundary).similarities()
    valid = evaluate(run, data, split="valid", progress=False)
    test = evaluate(run, data, split="test", progress=False)
    return {"lambda": lam, "steps": res["step"], "epochs": res["epoch"], "stopped": res["stopped"],
            "train_wall_s": wall, "train_cpu_s": cpu, "threads": torch.get_num_threads(),
            "best_step": run.meta["step"], "valid_cer": valid["cer"], "valid_wer": valid["wer"],
            "test_cer": test["cer"], "test_wer": test["wer"], "similarity": {k: float(v) for k, v in sims.items()},
            "final_similarity": res["similarity"], "loadavg_end": os.getloadavg()}


def table(results: list[dict], meta: dict) -> str:
    layers = list(results[0]["final_similarity"])
    head = ("| λ | steps | train wall (s) | valid CER % (unseen sentences) | valid WER % | test CER % (unseen voices) "
            "| test WER % | min S̄ | " + " | ".join(f"S̄ {l}" for l in layers) + " |")
    sep = "|" + "---|" * (8 + len(layers))
    rows = []
    for r in sorted(results, key=lambda r: r["lambda"]):
        s = r["final_similarity"]
        rows.append(f"| {r['lambda']:g} | {r['steps']} | {r['train_wall_s']:.0f} | {100 * r['valid_cer']:.1f} | "
                    f"{100 * r['valid_wer']:.1f} | {100 * r['test_cer']:.1f} | {100 * r['test_wer']:.1f} | "
                    f"{min(s.values()):.2f} | " + " | ".join(f"{s[l]:.2f}" for l in layers) + " |")
    info = (f"Command: `{meta['command']}`  \n"
            f"Config `{meta['config']}`, corpus `{meta['data']}` ({meta['corpus']}), budget {meta['budget']}, "
            f"{meta['jobs']} run(s) at a time with {meta['threads']} thread(s) each.  \n"
            f"Load average (1 min) at start {meta['load_start']:.1f}, at end {meta['load_end']:.1f} "
            f"on {meta['cores']} cores; finished {meta['finished']}.  \n"
            f"CER/WER: best checkpoint (lowest valid CER; the first one on ties); S̄: the model at the end of training.")
    return "\n".join([BEGIN, info, "", head, sep, *rows, END])


def write_doc(doc: Path, text: str, *, begin: str = BEGIN, end: str = END, heading: str = "λ sweep") -> None:
    """Put ``text`` (which starts with ``begin`` and ends with ``end``) in place of the block between those
    markers in ``doc``, or append it under ``## heading``."""
    old = doc.read_text() if doc.exists() else "# Training benchmarks\n"
    if begin in old and end in old:
        new = old[:old.index(begin)] + text + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + f"\n\n## {heading}\n\n" + text + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, help="directory for the runs (one per λ)")
    ap.add_argument("--config", default="small")
    ap.add_argument("--lambdas", default="0,0.003,0.01,0.03")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--minutes", type=float, help="wall-clock training budget per run")
    g.add_argument("--steps", type=int, help="optimizer steps per run")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--doc", default=str(Path(__file__).resolve().parent.parent / "docs/benchmarks/training.md"))
    ap.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--render", action="store_true", help="only rewrite the doc table from OUT/sweep.json")
    args = ap.parse_args(argv)
    if args.render:
        d = json.loads((Path(args.out) / "sweep.json").read_text())
        text = table(d["results"], d["meta"])
        print(text)
        write_doc(Path(args.doc), text)
        return 0

    out = Path(args.out)
    if args.one is not None:
        r = run_one(args.data, str(out / f"lambda-{args.one:g}"), args.config, args.one, args.minutes, args.steps,
                    args.threads, args.seed)
        (out / f"lambda-{args.one:g}.json").write_text(json.dumps(r, indent=2))
        return 0

    if not (args.minutes or args.steps):
        ap.error("give --minutes or --steps")
    lams = [float(x) for x in args.lambdas.split(",")]
    out.mkdir(parents=True, exist_ok=True)
    from toposcope.corpus import Corpus
    from toposcope.config import load_config
    from toposcope.data import load_features

    corpus = Corpus.load(args.data)
    load_features(corpus, load_config(args.config).model.features)  # cache once, before the runs
    load_start = os.getloadavg()[0]
    env = {**os.environ, "TOPOSCOPE_NO_PROGRESS": "1"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    budget = ["--minutes", str(args.minutes)] if args.minutes else ["--steps", str(args.steps)]
    pending, running = list(lams), []
    while pending or running:
        while pending and len(running) < args.jobs:
            lam = pending.pop(0)
            cmd = [sys.executable, __file__, "--data", args.data, "--out", str(out), "--config", args.config,
                   "--one", str(lam), "--seed", str(args.seed), *budget,
                   *(["--threads", str(args.threads)] if args.threads else [])]
            log = open(out / f"lambda-{lam:g}.log", "w")
            running.append((lam, subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log))
            print(f"started λ={lam:g}", flush=True)
        time.sleep(5)
        for item in list(running):
            lam, p, log = item
            if p.poll() is not None:
                running.remove(item)
                log.close()
                print(f"finished λ={lam:g} (exit {p.returncode})", flush=True)
    results = []
    for lam in lams:
        f = out / f"lambda-{lam:g}.json"
        if f.exists():
            results.append(json.loads(f.read_text()))
        else:
            print(f"λ={lam:g} failed; see {out / f'lambda-{lam:g}.log'}", file=sys.stderr)
    if not results:
        return 1
    s = corpus.summary()["splits"]
    meta = {"command": "python benchmarks/sweep_lambda.py " + " ".join(sys.argv[1:]), "config": args.config,
            "data": args.data, "corpus": ", ".join(f"{k} {v['hours']:.2f} h" for k, v in s.items()),
            "budget": f"{args.minutes:g} min wall clock" if args.minutes else f"{args.steps} steps",
            "jobs": args.jobs, "threads": args.threads or "default", "load_start": load_start,
            "load_end": os.getloadavg()[0], "cores": os.cpu_count(),
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    text = table(results, meta)
    print(text)
    write_doc(Path(args.doc), text)
    (out / "sweep.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
