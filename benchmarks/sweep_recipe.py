"""Recipe sweep: which training recipe gives the best held-out-voice CER in a fixed budget (issue 14).

Each variant of ``benchmarks/recipe_variants.toml`` (or ``--variants-file``) is merged into the base config
(``--config``, default ``small``), trained on ``--data`` for ``--minutes`` of wall clock (or ``--steps``),
then its best checkpoint (lowest valid CER) is decoded on the valid split (unseen sentences of the
training voices) and the test split (held-out voices). Runs go one at a time by default: a wall-clock
budget only means something on an otherwise quiet machine (the load average is recorded). The table is
written between ``<!-- recipe:begin -->`` and ``<!-- recipe:end -->`` in ``docs/benchmarks/training.md``.

    .venv/bin/toposcope synth --out /tmp/corpus --hours 2
    .venv/bin/python benchmarks/sweep_recipe.py --data /tmp/corpus --out /tmp/recipe --minutes 6 \\
        --variants noaug,aug,aug-lr3,aug-narrow
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- recipe:begin -->", "<!-- recipe:end -->"


def base_config(name: str):
    """A base for variants: ``benchmarks/recipe_bases/<name>.toml`` when it exists (the frozen config a sweep
    round started from), else a shipped config name or TOML path (:func:`toposcope.config.load_config`)."""
    from toposcope.config import load_config

    frozen = HERE / "recipe_bases" / f"{name}.toml"
    return load_config(str(frozen) if frozen.is_file() else name)


def variant_config(base: str, overlay: dict):
    """The base config with ``overlay`` merged in (see the variants file's header). A ``base`` key in the
    overlay replaces ``base`` (:func:`base_config`)."""
    from toposcope.config import config_from_dict

    overlay = dict(overlay)
    base = overlay.pop("base", base)
    d = copy.deepcopy(base_config(base).to_dict())
    for key, val in overlay.items():
        if key == "layers":
            for i, change in val.items():
                d["layers"][int(i)].update(change)
                d["layers"][int(i)].pop("grid", None)
        elif isinstance(val, dict):
            d.setdefault(key, {}).update(val)
        else:
            d[key] = val
    return config_from_dict(d, f"variant of {base}")


def run_one(data: str, out: Path, name: str, cfg, minutes, steps, seed: int) -> dict:
    import torch

    from toposcope.checkpoint import load_run
    from toposcope.evaluate import evaluate
    from toposcope.train import train

    t0, c0 = time.perf_counter(), time.process_time()
    res = train(data, out, config=cfg, epochs=100000, max_minutes=minutes, max_steps=steps, seed=seed, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    run = load_run(out)
    valid = evaluate(run, data, split="valid", progress=False)
    test = evaluate(run, data, split="test", progress=False)
    return {"variant": name, "steps": res["step"], "epochs": res["epoch"], "train_wall_s": wall, "train_cpu_s": cpu,
            "s_per_step": res["elapsed_s"] / max(res["step"], 1), "best_step": run.meta["step"],
            "valid_cer": valid["cer"], "valid_wer": valid["wer"], "test_cer": test["cer"], "test_wer": test["wer"],
            "similarity": res["similarity"], "threads": torch.get_num_threads(), "loadavg_end": os.getloadavg()}


def table(results: list[dict], meta: dict) -> str:
    head = ("| variant | steps | s/step | valid CER % (unseen sentences) | valid WER % | test CER % (held-out voices) "
            "| test WER % | S̄ min / mean (end) | load at end |")
    rows = []
    for r in results:
        s = list(r["similarity"].values())
        rows.append(f"| {r['variant']} | {r['steps']} | {r['s_per_step']:.2f} | {100 * r['valid_cer']:.1f} | "
                    f"{100 * r['valid_wer']:.1f} | {100 * r['test_cer']:.1f} | {100 * r['test_wer']:.1f} | "
                    f"{min(s):.2f} / {sum(s) / len(s):.2f} | {r['loadavg_end'][0]:.1f} |")
    info = (f"Command: `{meta['command']}`  \n"
            f"Base config `{meta['config']}`, corpus `{meta['data']}` ({meta['corpus']}), budget {meta['budget']} "
            f"per run, one run at a time; load average (1 min) at start {meta['load_start']:.1f} on "
            f"{meta['cores']} cores; finished {meta['finished']}.  \n"
            "CER/WER of the best checkpoint (lowest valid CER); S̄ of the model at the end of training.")
    return "\n".join([BEGIN, info, "", head, "|" + "---|" * 9, *rows, END])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, help="directory for the runs (one per variant)")
    ap.add_argument("--config", default="small")
    ap.add_argument("--variants-file", default=str(HERE / "recipe_variants.toml"))
    ap.add_argument("--variants", default=None, help="comma-separated names (default: all in the file)")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--minutes", type=float, help="wall-clock training budget per run")
    g.add_argument("--steps", type=int, help="optimizer steps per run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--doc", default=str(HERE.parent / "docs/benchmarks/training.md"))
    ap.add_argument("--no-doc", action="store_true", help="do not touch the doc")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode: one variant
    args = ap.parse_args(argv)

    variants = tomllib.loads(Path(args.variants_file).read_text())
    names = [n.strip() for n in args.variants.split(",")] if args.variants else list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(variants)}")
    out = Path(args.out)
    if args.one is not None:
        cfg = variant_config(args.config, variants[args.one])
        r = run_one(args.data, out / args.one, args.one, cfg, args.minutes, args.steps, args.seed)
        (out / f"{args.one}.json").write_text(json.dumps(r, indent=2))
        return 0

    from toposcope.config import load_config
    from toposcope.corpus import Corpus
    from toposcope.data import load_features

    out.mkdir(parents=True, exist_ok=True)
    corpus = Corpus.load(args.data, alignments=False)
    load_features(corpus, load_config(args.config).model.features)  # cached once, before the timed runs
    load_start = os.getloadavg()[0]
    budget = ["--minutes", str(args.minutes)] if args.minutes else ["--steps", str(args.steps)]
    results = []
    for n in names:
        print(f"{time.strftime('%H:%M:%S')} {n} ...", flush=True)
        with open(out / f"{n}.log", "w") as log:
            p = subprocess.run([sys.executable, __file__, "--data", args.data, "--out", str(out), "--config",
                                args.config, "--variants-file", args.variants_file, "--one", n, "--seed",
                                str(args.seed), *budget], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "TOPOSCOPE_NO_PROGRESS": "1"})
        f = out / f"{n}.json"
        if p.returncode or not f.exists():
            print(f"{n} failed (exit {p.returncode}); see {out / f'{n}.log'}", file=sys.stderr)
            continue
        r = json.loads(f.read_text())
        results.append(r)
        print(f"  {r['steps']} steps, valid CER {100 * r['valid_cer']:.1f} %, test CER {100 * r['test_cer']:.1f} %, "
              f"WER {100 * r['test_wer']:.1f} %", flush=True)
    if not results:
        return 1
    s = corpus.summary()["splits"]
    meta = {"command": "python benchmarks/sweep_recipe.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "config": args.config, "data": args.data,
            "corpus": ", ".join(f"{k} {v['hours']:.2f} h" for k, v in s.items()),
            "budget": f"{args.minutes:g} min wall clock" if args.minutes else f"{args.steps} steps",
            "load_start": load_start, "cores": os.cpu_count(),
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    text = table(results, meta)
    print(text)
    (out / "recipe.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    if not args.no_doc:
        from sweep_lambda import write_doc  # benchmarks/ is sys.path[0] when run as a script

        write_doc(Path(args.doc), text, begin=BEGIN, end=END, heading="Recipe sweep")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
