"""DistributedDataParallel: 2 processes (torchrun, gloo) == 1 process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from helpers import tone_corpus
from toposcope.checkpoint import dump_toml, load_checkpoint
from toposcope.config import load_config
from toposcope.train import train

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")


@pytest.mark.parametrize("phone_head", [False, True])
def test_two_processes_match_one(tmp_path, phone_head):
    corpus = tone_corpus(tmp_path / "corpus", n=16, letter_phones=phone_head)
    cfg = load_config("tiny").to_dict()
    cfg["dropout"] = 0.0
    if phone_head:  # its loss is a mean over the global batch's labelled frames, like CTC's over characters
        cfg["phone_head"] = {"layer": "conv2", "weight": 1.0}
    cfg["train"].update(batch_size=4, warmup_steps=2, log_every=1, max_steps=7, topo_weight=0.05)
    conf = tmp_path / "ddp.toml"
    conf.write_text(dump_toml(cfg))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOPOSCOPE_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "toposcope", "train", "--data", str(corpus.root), "--out", str(tmp_path / "two"),
           "--config", str(conf), "--no-progress", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    train(corpus.root, tmp_path / "one", config=conf, progress=False, device="cpu")
    two = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")
    one = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["step"] == one["step"] == 7
    start = {k: v for k, v in one["model"].items()}
    worst = 0.0
    for k, v in one["model"].items():
        assert torch.allclose(two["model"][k], v, rtol=1e-4, atol=1e-5), k
        worst = max(worst, float((two["model"][k] - v).abs().max()))
    # and training did move the parameters (the comparison is not trivially true)
    import toposcope.model as M

    torch.manual_seed(0)
    init = M.Wav2Letter(load_config(conf).model).state_dict()
    assert max(float((start[k] - init[k]).abs().max()) for k in init) > 100 * max(worst, 1e-7)
    assert ("phone_head.weight" in one["model"]) == phone_head
    # both processes logged the same global loss
    import json

    for key in ("ctc", "phone") if phone_head else ("ctc",):
        l1 = [json.loads(l)[key] for l in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
              if '"train"' in l]
        l2 = [json.loads(l)[key] for l in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
              if '"train"' in l]
        assert len(l1) == 7 and l1 == pytest.approx(l2, rel=1e-4), key
