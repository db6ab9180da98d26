"""Data at scale (issue 11): peak RSS of training vs corpus size, extraction with 1 vs 2 jobs, loading speed,
and a 1000-hour manifest's first batch.

Large corpora are built from a base corpus (e.g. ``toposcope synth --hours 2``) by repeating its *training*
utterances under new ids (``r<k>-<id>``); valid and test stay the base's. The repeated utterances share the
base's audio files (hard links), so the feature store extracts each file once and their index entries
point at the same blocks: manifest, index and sampler are full size, the shard data is the base's. That
is what "memory must not grow with the corpus" is about (metadata); the disk and extraction costs of a
real corpus of that size are measured separately (``extract``) and scale linearly.

    B=benchmarks/bench_data.py; PY=.venv/bin/python
    $PY -m toposcope synth --hours 2 --out /tmp/d/base
    $PY $B build /tmp/d/base --out /tmp/d/c20 --hours 20
    $PY $B rss /tmp/d/c20 --config paper --max-steps 20       # /usr/bin/time -v around toposcope train
    $PY $B extract /tmp/d/base --config paper --hours 0.5 --jobs 1 2
    $PY $B loading /tmp/d/base --config paper --workers 0 1
    $PY $B build /tmp/d/base --out /tmp/d/c1000 --hours 1000 --concat 4     # ~12 s utterances, ~300k lines
    $PY $B first-batch /tmp/d/c1000 --config paper

Targets (issue 11): peak RSS of ``train --config paper --max-steps 20`` flat within 15 % over 2/20/60 h and
<= 3 GB; extraction with 2 jobs >= 1.8x faster than 1; loading >= 5x faster than the paper step consumes
audio; a 1000-hour manifest loads and yields its first batch in <= 30 s and <= 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "TOPOSCOPE_NO_PROGRESS": "1"}


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def build(args) -> int:
    import numpy as np

    from toposcope.audio import read_audio, write_wav
    from toposcope.corpus import Corpus, Utterance

    base = Corpus.load(args.base)
    out = Path(args.out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    train = base.split("train")
    if args.concat > 1:  # longer utterances: K consecutive training utterances in one file
        groups, units = [train[i:i + args.concat] for i in range(0, len(train), args.concat)], []
        for g in groups[:args.max_files or None]:
            waves, phones, words, texts, t = [], [], [], [], 0.0
            for u in g:
                w = read_audio(base.audio_path(u))
                phones += [(s + t, e + t, lab) for s, e, lab in u.phones]
                words += [(s + t, e + t, x) for s, e, x in (u.words or [])]
                texts.append(u.text)
                waves.append(w)
                t += len(w) / 16000
            uid = "cat-" + g[0].id
            write_wav(out / "audio" / f"{uid}.wav", np.concatenate(waves))
            units.append(Utterance(id=uid, audio=f"audio/{uid}.wav", speaker=g[0].speaker, text=" ".join(texts),
                                   duration=t, phones=phones, words=words or None, split="train"))
    else:
        units = []
        for u in train:
            _link(base.audio_path(u), out / u.audio)
            units.append(u)
    keep = []
    for u in base:
        if (u.split or "train") != "train":
            _link(base.audio_path(u), out / u.audio)
            keep.append(u)
    want = args.hours * 3600 - sum(u.duration for u in keep)
    dicts = [u.to_dict() for u in units]
    if args.minimal:  # metadata only: one segment per line, no words / source phones
        for d in dicts:
            d["phones"] = [[0.0, d["duration"], "sil"]]
            for key in ("words", "source_phones"):
                d.pop(key, None)
    counts = {"lines": 0, "seconds": 0.0}

    def write(f):
        for u in keep:
            f.write(json.dumps(u.to_dict(), ensure_ascii=False) + "\n")
            counts["lines"] += 1
            counts["seconds"] += u.duration
        total, k = 0.0, 0
        while total < want:
            for d in dicts:
                if total >= want:
                    break
                f.write(json.dumps({**d, "id": f"r{k}-{d['id']}"}, ensure_ascii=False) + "\n")
                total += d["duration"]
                counts["lines"] += 1
                counts["seconds"] += d["duration"]
            k += 1

    from toposcope._util import atomic_write

    atomic_write(out / "manifest.jsonl", write, mode="w")
    print(json.dumps({"corpus": str(out), "lines": counts["lines"], "hours": round(counts["seconds"] / 3600, 2),
                      "unique_audio_files": len(units) + len(keep),
                      "manifest_mb": round((out / 'manifest.jsonl').stat().st_size / 2 ** 20, 1)}))
    return 0


def _time_v(cmd: list[str]) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v`` (niced); wall seconds and peak RSS (MB)."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", "nice", "-n", "19", *cmd], env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([0-9.]+)", proc.stderr))
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "peak_rss_mb": round(int(m.group(1)) / 1024, 1) if m else None,
            "stdout_tail": proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []}


def rss(args) -> int:
    from toposcope.corpus import Corpus

    c = Corpus.load(args.corpus)
    info = {"corpus": str(args.corpus), "lines": len(c), "hours": round(sum(u.duration for u in c) / 3600, 2),
            "load_before": os.getloadavg()}
    exe = [sys.executable, "-m", "toposcope"]
    info["features"] = _time_v([*exe, "features", str(args.corpus), "--config", args.config, "--jobs", str(args.jobs),
                                "--no-progress"])
    out = Path(args.run or f"/tmp/bench-data-run-{os.getpid()}")
    shutil.rmtree(out, ignore_errors=True)
    info["train"] = _time_v([*exe, "train", "--data", str(args.corpus), "--out", str(out), "--config", args.config,
                             "--max-steps", str(args.max_steps), "--no-progress"])
    shutil.rmtree(out, ignore_errors=True)
    info["load_after"] = os.getloadavg()
    print(json.dumps(info))
    return 0


def extract(args) -> int:
    import tempfile

    from toposcope.config import load_config
    from toposcope.corpus import Corpus
    from toposcope.data import load_features

    c = Corpus.load(args.corpus)
    utts, t = [], 0.0
    for u in c:
        if t >= args.hours * 3600:
            break
        utts.append(u)
        t += u.duration
    cfg = load_config(args.config).model.features
    res = {"hours": round(t / 3600, 3), "utterances": len(utts), "config": args.config, "load_before": os.getloadavg()}
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory(dir=args.tmp) as d:
            t0 = time.perf_counter()
            load_features(c, cfg, cache=d, jobs=jobs, utterances=utts, progress=False)
            res[f"jobs{jobs}_s"] = round(time.perf_counter() - t0, 2)
    if len(args.jobs) >= 2:
        lo, hi = min(args.jobs), max(args.jobs)
        res[f"speedup_{hi}_vs_{lo}"] = round(res[f"jobs{lo}_s"] / res[f"jobs{hi}_s"], 2)
    res["load_after"] = os.getloadavg()
    print(json.dumps(res))
    return 0


def loading(args) -> int:
    from toposcope.config import load_config
    from toposcope.corpus import Corpus
    from toposcope.data import BucketBatchSampler, SpeechDataset, batch_loader, load_features

    c = Corpus.load(args.corpus)
    cfg = load_config(args.config)
    fc = cfg.model.features
    store = load_features(c, fc, jobs=2, progress=False)
    ds = SpeechDataset(c.split("train"), store)
    sampler = BucketBatchSampler(ds.lengths, args.batch, seed=0)
    res = {"config": args.config, "batch": args.batch, "load_before": os.getloadavg()}
    for w in args.workers:
        t0, frames, n = time.perf_counter(), 0, 0
        for b in batch_loader(ds, sampler, 0, workers=w):
            frames += int(b.lengths.sum())
            n += 1
            if n >= args.batches:
                break
        dt = time.perf_counter() - t0
        res[f"workers{w}"] = {"batches": n, "audio_s": round(frames * fc.frame_seconds, 1), "wall_s": round(dt, 3),
                              "x_real_time": round(frames * fc.frame_seconds / dt, 1)}
    res["load_after"] = os.getloadavg()
    print(json.dumps(res))
    return 0


def first_batch(args) -> int:
    if not args.child:
        r = _time_v([sys.executable, __file__, "first-batch", str(args.corpus), "--config", args.config, "--child"])
        print(json.dumps({**json.loads(r["stdout_tail"][0]), "wall_s_process": r["wall_s"], "cpu_s_process": r["cpu_s"],
                          "peak_rss_mb": r["peak_rss_mb"], "load": os.getloadavg()}))
        return 0
    t0 = time.perf_counter()
    from toposcope.config import load_config
    from toposcope.corpus import Corpus
    from toposcope.data import BucketBatchSampler, SpeechDataset, batch_loader, load_features
    from toposcope.model import Wav2Letter

    t_import = time.perf_counter() - t0
    cfg = load_config(args.config)
    c = Corpus.load(args.corpus)
    t_manifest = time.perf_counter() - t0
    store = load_features(c, cfg.model.features, progress=False, jobs=2)
    t_store = time.perf_counter() - t0
    model = Wav2Letter(cfg.model)
    ds = SpeechDataset(c.split("train"), store, output_lengths=model.output_lengths)
    sampler = BucketBatchSampler(ds.lengths, cfg.train.batch_size, seed=0)
    b = next(batch_loader(ds, sampler, 0))
    t_batch = time.perf_counter() - t0
    print(json.dumps({"lines": len(c), "hours": round(sum(u.duration for u in c) / 3600, 1),
                      "cpu_s": round(time.process_time(), 2),
                      "import_s": round(t_import, 2), "manifest_s": round(t_manifest, 2),
                      "store_s": round(t_store, 2), "first_batch_s": round(t_batch, 2), "batch": list(b.feats.shape)}))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("build")
    p.add_argument("base")
    p.add_argument("--out", required=True)
    p.add_argument("--hours", type=float, required=True)
    p.add_argument("--concat", type=int, default=1, help="join K base utterances per audio file (longer utterances)")
    p.add_argument("--max-files", type=int, default=0, help="with --concat: at most this many joined files")
    p.add_argument("--minimal", action="store_true", help="one phone segment per repeated line (metadata only)")
    p.set_defaults(fn=build)
    p = sub.add_parser("rss")
    p.add_argument("corpus")
    p.add_argument("--config", default="paper")
    p.add_argument("--max-steps", type=int, default=20)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--run", default=None)
    p.set_defaults(fn=rss)
    p = sub.add_parser("extract")
    p.add_argument("corpus")
    p.add_argument("--config", default="paper")
    p.add_argument("--hours", type=float, default=0.5)
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--tmp", default=None)
    p.set_defaults(fn=extract)
    p = sub.add_parser("loading")
    p.add_argument("corpus")
    p.add_argument("--config", default="paper")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    p.set_defaults(fn=loading)
    p = sub.add_parser("first-batch")
    p.add_argument("corpus")
    p.add_argument("--config", default="paper")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(fn=first_batch)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
