"""The TrainState refactor of ``toposcope.train`` against the loop it replaced: same run, same time?

Extracts ``src/toposcope/train.py`` of an older commit (default ``f0dc703``, the last before the refactor)
into a temporary module, makes its imports absolute and its forward call pass ``lengths`` (as the current
model expects), then trains the same ``tiny`` run with both on a tone corpus (``tests/helpers.py``) and
compares the checkpoints bit for bit, the ``metrics.jsonl`` lines, and the wall time (best of ``--repeats``).

    .venv/bin/python benchmarks/bench_train_refactor.py --steps 30 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def old_module(commit: str, where: Path) -> None:
    src = subprocess.run(["git", "show", f"{commit}:src/toposcope/train.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    src = re.sub(r"^from \. import", "from toposcope import", src, flags=re.M)
    src = re.sub(r"^(\s*)from \.(\w+) import", r"\1from toposcope.\2 import", src, flags=re.M)
    src = src.replace("logp = ddp(b.feats)", "logp = ddp(b.feats, b.lengths)")
    (where / "oldtrain.py").write_text(src)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", default="f0dc703")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    old_module(a.commit, tmp)
    sys.path[:0] = [str(tmp), str(ROOT / "tests")]
    import torch

    import oldtrain
    from helpers import tone_corpus
    from toposcope import train as newtrain
    from toposcope.checkpoint import load_checkpoint
    from toposcope.config import load_config

    torch.set_num_threads(1)
    corpus = tone_corpus(tmp / "corpus", n=16)
    cfg = load_config("tiny")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=0.2),  # dropout uses the RNG
                              train=dataclasses.replace(cfg.train, batch_size=4, warmup_steps=2, log_every=1,
                                                        max_steps=a.steps, topo_weight=0.05))
    times: dict[str, list[float]] = {"old": [], "new": []}
    for rep in range(a.repeats):
        for name, mod in (("old", oldtrain), ("new", newtrain)):
            t = time.perf_counter()
            mod.train(corpus.root, tmp / f"{name}{rep}", config=cfg, progress=False)
            times[name].append(time.perf_counter() - t)
    old, new = load_checkpoint(tmp / "old0/checkpoints/last.pt"), load_checkpoint(tmp / "new0/checkpoints/last.pt")
    same_w = all(torch.equal(old["model"][k], new["model"][k]) for k in old["model"])
    same_adam = all(torch.equal(old["optimizer"]["state"][i][k], new["optimizer"]["state"][i][k])
                    for i in old["optimizer"]["state"] for k in ("exp_avg", "exp_avg_sq"))
    same_log = (tmp / "old0/metrics.jsonl").read_text() == (tmp / "new0/metrics.jsonl").read_text()
    print(f"commit {a.commit} vs working tree, tiny config, {a.steps} steps, torch threads 1")
    print(f"weights identical: {same_w}; Adam state identical: {same_adam}; metrics.jsonl identical: {same_log}; "
          f"checkpoint keys equal: {set(old) == set(new)}")
    print(f"wall s old {[round(x, 2) for x in times['old']]} new {[round(x, 2) for x in times['new']]}; "
          f"best old {min(times['old']):.2f} new {min(times['new']):.2f} ({min(times['new']) / min(times['old']):.3f}x)")


if __name__ == "__main__":
    main()
