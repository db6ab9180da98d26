"""Training (toposcope.train): loss falls, exact resume, Ctrl-C, non-finite loss, bad input; the run folder
(restart before the first checkpoint, torn metrics line, stale temp files, the lock); TrainState, MetricsLog."""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import pytest
import torch

from helpers import tone_corpus
from toposcope.checkpoint import load_checkpoint, load_run
from toposcope.cli import main as cli_main
from toposcope.config import ConfigError, PhoneHeadConfig, load_config
from toposcope.corpus import CorpusError
from toposcope.train import NonFiniteLossError, lr_at, train


def tiny(dropout=0.1, **train_kw):
    cfg = load_config("tiny")
    train_kw = {"batch_size": 4, "warmup_steps": 2, "log_every": 1, **train_kw}
    t = dataclasses.replace(cfg.train, **train_kw)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=dropout), train=t)


def with_phone_head(cfg, layer: str = "conv2", weight: float = 1.0):
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, phone_head=PhoneHeadConfig(layer, weight)))


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return tone_corpus(tmp_path_factory.mktemp("tones"), n=16)


@pytest.fixture(scope="module")
def lettered(tmp_path_factory):
    """The tone corpus with each tone aligned to a phone (for the phone head)."""
    return tone_corpus(tmp_path_factory.mktemp("lettered"), n=16, letter_phones=True)


def lines(run, kind):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if json.loads(l)["kind"] == kind]


def test_tiny_end_to_end_loss_falls(tiny_run):
    """The shared fixture: tiny config on synthesized speech, 8 epochs."""
    tr, va = lines(tiny_run, "train"), lines(tiny_run, "valid")
    assert len(va) == 8 and [v["epoch"] for v in va] == list(range(1, 9))
    first, last = tr[0]["ctc"], min(l["ctc"] for l in tr[-3:])
    assert last < 0.8 * first, (first, last)
    for l in tr + va:
        assert set(l["similarity"]) == {"conv1", "conv2", "conv3"}
    assert {"step", "epoch", "loss", "ctc", "topo", "lr"} <= set(tr[0]) and "phone" not in tr[0]
    assert all(0 <= v["cer"] <= 1.5 and "wer" in v for v in va)
    last_ck = load_checkpoint(tiny_run / "checkpoints" / "last.pt")
    assert {"model", "config", "step", "epoch", "optimizer", "scheduler", "rng"} <= set(last_ck)
    assert last_ck["epoch"] == 8 and last_ck["step"] == va[-1]["step"] >= tr[-1]["step"]
    best = load_run(tiny_run)
    assert best.config == load_config(tiny_run / "config.toml")
    assert best.meta["metrics"]["cer"] == min(v["cer"] for v in va)


@pytest.mark.slow
def test_loss_falls_and_topo_raises_similarity(tones, tmp_path):
    cfg = dict(dropout=0.0, lr=1e-2, log_every=3)
    r0 = train(tones.root, tmp_path / "l0", config=tiny(topo_weight=0.0, **cfg), epochs=10, progress=False)
    r1 = train(tones.root, tmp_path / "l1", config=tiny(topo_weight=0.05, **cfg), epochs=10, progress=False)
    tr = lines(tmp_path / "l0", "train")
    assert tr[-1]["ctc"] < 0.5 * tr[0]["ctc"]
    assert r0["topo"] == 0.0 and r1["topo"] > 0
    # the regularizer makes neighbouring filters similar; without it they stay near 0
    for layer in ("conv1", "conv2"):
        assert r1["similarity"][layer] > r0["similarity"][layer] + 0.2, (r0["similarity"], r1["similarity"])
        assert abs(r0["similarity"][layer]) < 0.2


def test_sorted_epochs_reach_the_sampler(tones, tmp_path, monkeypatch):
    """``sorted_epochs = 1``: training reads epoch 1 in the sampler's length order, epoch 2 shuffled."""
    import toposcope.train as T

    seen, real = {}, T.batch_loader

    def spy(dataset, sampler, epoch, **kw):
        seen[epoch] = (sampler.epoch_batches(epoch), [list(b) for b in sampler.batches], dataset.lengths)
        return real(dataset, sampler, epoch, **kw)

    monkeypatch.setattr(T, "batch_loader", spy)
    train(tones.root, tmp_path / "r", config=tiny(sorted_epochs=1, batch_size=2), epochs=2, progress=False)
    (e0, by_length, lengths), (e1, _, _) = seen[0], seen[1]
    assert e0 == by_length and e1 != by_length and sorted(e1) == sorted(by_length)
    longest = [max(lengths[i] for i in b) for b in e0]
    assert longest == sorted(longest)


def _params(run, which="last"):
    return load_checkpoint(run / "checkpoints" / f"{which}.pt")


@pytest.mark.parametrize("phone_head", [False, True])
def test_resume_after_ctrl_c_is_exact(tones, lettered, tmp_path, phone_head):
    cfg = tiny(dropout=0.2, max_steps=9)  # 12 train utts / 4 -> 3 steps per epoch; dropout uses the RNG
    if phone_head:  # the head's weights and Adam state are part of the checkpoint
        cfg, tones = with_phone_head(cfg), lettered
    straight = train(tones.root, tmp_path / "a", config=cfg, progress=False)
    assert straight["stopped"] == "max_steps" and straight["step"] == 9

    def ctrl_c_at_5(info):
        if info["step"] == 5:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: finish the step, save, return

    part = train(tones.root, tmp_path / "b", config=cfg, progress=False, callback=ctrl_c_at_5)
    assert part["stopped"] == "interrupted" and part["step"] == 5
    ck = _params(tmp_path / "b")
    assert ck["step"] == 5 and ck["epoch"] == 1 and ck["batch_in_epoch"] == 2
    resumed = train(tones.root, tmp_path / "b", config=None, resume=True, progress=False)
    assert resumed["step"] == 9
    a, b = _params(tmp_path / "a"), _params(tmp_path / "b")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    # metrics of the resumed run continue the interrupted one without duplicates
    steps = [l["step"] for l in lines(tmp_path / "b", "train")]
    assert steps == list(range(1, 10))
    assert resumed["cer"] == straight["cer"]


def test_phone_head_learns_the_aligned_phones(lettered, tmp_path):
    """With a [phone_head], the logged loss is CTC + topo + w * phone CE, and the head learns the letters'
    phones: its frame-level CE falls from ~ln 40 and it labels the valid split's frames better than chance."""
    import numpy as np

    from toposcope.data import load_features
    from toposcope.labels import phone_targets

    cfg = with_phone_head(tiny(dropout=0.0, lr=1e-2, topo_weight=0.01), "conv2", 0.5)
    train(lettered.root, tmp_path / "ph", config=cfg, epochs=12, progress=False)
    tr = lines(tmp_path / "ph", "train")
    assert tr[0]["phone"] == pytest.approx(np.log(40), rel=0.15)
    assert min(l["phone"] for l in tr[-3:]) < 0.5 * tr[0]["phone"]
    for l in (tr[0], tr[-1]):
        assert l["loss"] == pytest.approx(l["ctc"] + l["topo"] + 0.5 * l["phone"], rel=1e-6)
    run = load_run(tmp_path / "ph", "last")  # "best" is by CER, which 12 epochs of tone speech may not move
    model, f = run.model.eval(), run.config.model.features
    store = load_features(lettered, f)
    hits = total = 0
    counts = np.zeros(40)
    for u in lettered.split("valid"):
        x = store.get(u.id)[None]
        with torch.no_grad():
            _, logits = model(x, phones=True)
        y = phone_targets([u.phones], [logits.shape[1]], logits.shape[1], model.geometry("conv2"), f.hop,
                          f.sample_rate)[0]
        pred = logits[0].argmax(-1).numpy()
        hits, total = hits + int((pred[y >= 0] == y[y >= 0]).sum()), total + int((y >= 0).sum())
        counts += np.bincount(y[y >= 0], minlength=40)
    majority = counts.max() / total  # always answering the commonest phone (sil)
    print(f"phone head frame accuracy {hits / total:.3f}, majority share {majority:.3f}")
    assert hits / total > majority + 0.25, (hits / total, majority)


def test_phone_targets_follow_speed_perturbation(lettered, tmp_path, monkeypatch):
    """Under speed perturbation each item's frame times are scaled by original / augmented frames, so the
    targets come from the original alignment's clock (toposcope.labels.phone_targets' ``time_scale``)."""
    import toposcope.labels as L
    from toposcope.augment import AugmentConfig

    seen, real = [], L.phone_targets

    def spy(segments, n_valid, n_frames, convs, hop, sr, *, time_scale=None):
        seen.append(list(time_scale))
        return real(segments, n_valid, n_frames, convs, hop, sr, time_scale=time_scale)

    monkeypatch.setattr(L, "phone_targets", spy)
    aug = AugmentConfig(enabled=True, speeds=(0.8, 1.25), noise_prob=0.0, reverb_prob=0.0, vtlp_prob=0.0,
                        time_masks=0, freq_masks=0)
    cfg = dataclasses.replace(with_phone_head(tiny(dropout=0.0)), augment=aug)
    train(lettered.root, tmp_path / "sp", config=cfg, max_steps=6, progress=False)
    scales = [x for step in seen for x in step]
    assert len(seen) == 6 and all(2 <= len(step) <= 4 for step in seen)  # 10 items: batches of 4, 4, 2
    # a 0.8x speed makes an input 1.25x longer (scale 0.8), 1.25x makes it 0.8x as long (scale 1.25),
    # up to the STFT's rounding of the frame count; none stays at 1
    assert all(abs(x - 0.8) < 0.03 or abs(x - 1.25) < 0.05 for x in scales), scales
    assert any(x < 1 for x in scales) and any(x > 1 for x in scales)


def test_non_finite_loss_stops_with_last_checkpoint_intact(tones, tmp_path, monkeypatch):
    import toposcope.train as T

    real = T.ctc_loss_sum
    calls = {"n": 0}

    def poisoned(*a):
        calls["n"] += 1
        out = real(*a)
        return out * float("nan") if calls["n"] == 5 else out

    monkeypatch.setattr(T, "ctc_loss_sum", poisoned)
    run = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss .* step 5 .*last\.pt \(step 3\) is intact"):
        train(tones.root, run, config=tiny(), epochs=5, progress=False)
    ck = _params(run)
    assert ck["step"] == 3 and all(torch.isfinite(v).all() for v in ck["model"].values())
    assert (run / "checkpoints" / "best.pt").is_file()


def test_bad_input_is_refused_and_nothing_is_overwritten(tones, tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        train(tmp_path / "nope", tmp_path / "r0", config="tiny", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.jsonl").write_text("")
    with pytest.raises(CorpusError, match="empty"):
        train(empty, tmp_path / "r0", config="tiny", progress=False)
    notrain = tone_corpus(tmp_path / "notrain", n=4, splits=("valid", "test"))
    with pytest.raises(CorpusError, match="no 'train' utterances"):
        train(notrain.root, tmp_path / "r0", config="tiny", progress=False)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[layers]]\nchannels = 8\nkernel = 3\n[train]\nlearning_rate = 1\n')
    with pytest.raises(ConfigError, match="unknown key"):
        train(tones.root, tmp_path / "r0", config=bad, progress=False)
    huge = tmp_path / "huge.toml"
    huge.write_text('[[layers]]\nchannels = 8\nkernel = 3\nstride = 400\n[features]\nn_mels = 16\n')
    with pytest.raises(ConfigError, match="impossible sizes"):
        train(tones.root, tmp_path / "r0", config=huge, progress=False)
    assert not (tmp_path / "r0").exists()
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(tones.root, tmp_path / "r0", config="tiny", resume=True, progress=False)

    run = tmp_path / "run"
    train(tones.root, run, config=tiny(), max_steps=2, progress=False)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match="--resume"):
        train(tones.root, run, config=tiny(), max_steps=4, progress=False)
    with pytest.raises(ConfigError, match="different config.*topo_weight"):
        train(tones.root, run, config=tiny(), topo_weight=0.5, resume=True, progress=False)
    with pytest.raises(ConfigError, match="different config"):
        train(tones.root, run, config="small", resume=True, progress=False)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    # the command line reports the same errors cleanly
    assert cli_main(["train", "--data", str(tones.root), "--out", str(run), "--no-progress"]) == 2


def test_cli_train_and_resume_extends(tones, tmp_path, capsys):
    run = tmp_path / "cli"
    assert cli_main(["train", "--data", str(tones.root), "--out", str(run), "--config", "tiny",
                     "--max-steps", "3", "--seed", "1", "--no-progress"]) == 0
    assert load_config(run / "config.toml").train.seed == 1
    assert cli_main(["train", "--data", str(tones.root), "--out", str(run), "--resume", "--max-steps", "5",
                     "--no-progress"]) == 0
    assert _params(run)["step"] == 5 and load_config(run / "config.toml").train.max_steps == 5


def test_lr_schedule():
    kw = dict(base=1.0, planned=100, warmup=10, schedule="cosine", min_ratio=0.1)
    assert lr_at(0, 0, **kw) == pytest.approx(0.1) and lr_at(9, 0, **kw) == pytest.approx(1.0)
    assert lr_at(10, 0, **kw) == pytest.approx(1.0) and lr_at(100, 0, **kw) == pytest.approx(0.1)
    assert lr_at(55, 0, **kw) == pytest.approx(0.55)
    vals = [lr_at(s, 0, **kw) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))
    # a time budget that runs out first ends the schedule early
    assert lr_at(20, 30.0, budget_s=60.0, **kw) == pytest.approx(0.55)
    assert lr_at(50, 0, **{**kw, "schedule": "constant"}) == 1.0


def test_wall_clock_budget_stops_and_saves(tones, tmp_path):
    res = train(tones.root, tmp_path / "t", config=tiny(), epochs=10_000, max_minutes=0.003, progress=False)
    assert res["stopped"] == "max_minutes" and 0 < res["step"] < 10_000 * 3
    assert res["elapsed_s"] >= 0.18
    ck = _params(tmp_path / "t")
    assert ck["step"] == res["step"] and ck["scheduler"]["budget_s"] == pytest.approx(0.18)
    assert (tmp_path / "t" / "checkpoints" / "best.pt").is_file()


# -- the run folder: restart, torn metrics, stale temp files, the lock (docs/method.md § Reliability) ----------
def test_run_killed_before_its_first_checkpoint_is_restarted_from_scratch(tones, tmp_path, capsys):
    cfg = tiny(dropout=0.2, max_steps=3)
    straight = tmp_path / "straight"
    train(tones.root, straight, config=cfg, progress=False)

    class Killed(Exception):
        pass

    def die_at_2(info):
        if info["step"] == 2:
            raise Killed  # the process dies mid-epoch: config.toml and metrics lines, no checkpoint

    run = tmp_path / "killed"
    with pytest.raises(Killed):
        train(tones.root, run, config=cfg, progress=False, callback=die_at_2)
    assert (run / "config.toml").is_file() and not (run / "checkpoints" / "last.pt").exists()
    assert [l["step"] for l in lines(run, "train")] == [1, 2]
    capsys.readouterr()
    # --resume (and a plain re-run alike) starts it again from scratch, with a notice
    res = train(tones.root, run, config=None, resume=True, progress=False)
    assert "stopped before its first checkpoint; starting it again from scratch" in capsys.readouterr().err
    assert res["step"] == 3
    assert [l["step"] for l in lines(run, "train")] == [1, 2, 3]  # the killed attempt's lines are gone
    a, b = _params(straight), _params(run)
    for k in a["model"]:  # the same seed: the very same run as one never killed
        assert torch.equal(a["model"][k], b["model"][k]), k
    with pytest.raises(FileExistsError, match="--resume"):  # now it has a checkpoint: not started again
        train(tones.root, run, config=cfg, progress=False)


def test_torn_metrics_line_and_stale_temp_files_do_not_block_resume(tones, tmp_path):
    cfg = tiny(max_steps=5)

    def ctrl_c_at_2(info):
        if info["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    run = tmp_path / "torn"
    train(tones.root, run, config=cfg, progress=False, callback=ctrl_c_at_2)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 3, "ct')  # killed in the middle of a write
    stale = [run / "checkpoints" / ".last.pt.k1ll3d.tmp", run / ".config.toml.k1ll3d.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    res = train(tones.root, run, config=None, resume=True, progress=False)
    assert res["step"] == 5
    assert [l["step"] for l in lines(run, "train")] == [1, 2, 3, 4, 5]
    assert not any(p.exists() for p in stale)


def test_run_folder_is_locked_while_training_and_evaluating(tones, tmp_path):
    import fcntl

    from toposcope.evaluate import evaluate
    from toposcope.runlock import RunLockedError

    run = tmp_path / "locked"
    train(tones.root, run, config=tiny(), max_steps=1, progress=False)
    fd = os.open(run / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another writer holds the folder
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        with pytest.raises(RunLockedError, match=f"{run}.*in use"):
            train(tones.root, run, config=None, max_steps=2, resume=True, progress=False)
        with pytest.raises(RunLockedError, match="in use"):
            evaluate(run, tones, split="valid", progress=False)
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
        assert cli_main(["evaluate", str(run), "--data", str(tones.root), "--no-progress"]) == 2
    finally:
        os.close(fd)
    # released: both go on
    assert train(tones.root, run, config=None, max_steps=2, resume=True, progress=False)["step"] == 2
    assert (run / "eval" / "valid.json").exists() is False
    evaluate(run, tones, split="valid", progress=False)
    assert (run / "eval" / "valid.json").is_file()


def test_train_state_round_trip_restores_everything(tmp_path):
    from toposcope.train import Schedule, TrainState

    torch.manual_seed(3)
    cfg = tiny()

    def fresh():
        model = torch.nn.Linear(4, 3)
        return TrainState(model, torch.optim.Adam(model.parameters(), lr=0.1), cfg,
                          Schedule("cosine", planned_steps=10, warmup_steps=1, budget_s=60.0))

    st = fresh()
    st.model(torch.randn(5, 4)).sum().backward()
    st.optimizer.step()
    st.step, st.epoch, st.batch_in_epoch, st.elapsed_s, st.best_cer = 7, 2, 1, 12.5, 0.25
    st.last_valid = {"cer": 0.3, "wer": 0.9}
    saved = st.state_dict()
    after_save = torch.rand(3)  # what the RNG gives next after the save point
    assert saved["scheduler"] == {"kind": "cosine", "planned_steps": 10, "warmup_steps": 1, "elapsed_s": 12.5,
                                  "budget_s": 60.0}
    assert saved["world_size"] == 1 and saved["config"] == cfg.to_dict()
    from toposcope.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "last.pt", saved)  # weights_only-loadable
    back = fresh()
    back.load_state_dict(load_checkpoint(tmp_path / "last.pt"))
    assert torch.equal(torch.rand(3), after_save)
    assert (back.step, back.epoch, back.batch_in_epoch, back.elapsed_s, back.best_cer, back.last_valid) == \
        (7, 2, 1, 12.5, 0.25, {"cer": 0.3, "wer": 0.9})
    for k, v in st.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[k], v)
    assert torch.equal(back.optimizer.state_dict()["state"][0]["exp_avg"], st.optimizer.state_dict()["state"][0]["exp_avg"])


def test_metrics_log_is_strict_json_and_reads_past_a_torn_line(tmp_path):
    from toposcope.train import MetricsLog

    log = MetricsLog(tmp_path, tensorboard=False)
    for s in (1, 2, 3):
        log.append({"kind": "train", "step": s, "loss": float("nan") if s == 2 else 1.0 / s})
    log.close()
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text and json.loads(text.splitlines()[1])["loss"] is None
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "tr')
    assert [l["step"] for l in MetricsLog.read(tmp_path)] == [1, 2, 3]
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('\n{"kind": "valid", "step": 1, "cer": NaN}\n')  # as older versions wrote non-finite numbers
    MetricsLog(tmp_path, tensorboard=False).keep_until(2)
    assert (tmp_path / "metrics.jsonl").read_text().endswith("}\n") and "NaN" not in (tmp_path / "metrics.jsonl").read_text()
    assert [l["step"] for l in MetricsLog.read(tmp_path / "metrics.jsonl")] == [1, 2, 1]
    MetricsLog(tmp_path, enabled=False).append({"kind": "train", "step": 9})  # DDP rank > 0: writes nothing
    assert [l["step"] for l in MetricsLog.read(tmp_path)] == [1, 2, 1]


@pytest.mark.slow  # ~40 s: a second Python process extracting features of 160 utterances
def test_two_processes_one_folder_and_a_kill_before_the_first_checkpoint(tmp_path, capsys):
    """The issue's scenario with real processes: a second `train` into a folder that another is training
    into is refused (exit 2, "in use"); the first, killed with SIGKILL before its first checkpoint, is then
    started again from scratch."""
    import subprocess
    import sys
    import time

    from toposcope.checkpoint import dump_toml

    corpus = tone_corpus(tmp_path / "long", n=160, splits=("train",))  # one epoch = 160 steps of batch 1
    conf = tmp_path / "one.toml"
    conf.write_text(dump_toml(tiny(batch_size=1, max_steps=1000).to_dict()))
    run = tmp_path / "run"
    argv = ["train", "--data", str(corpus.root), "--out", str(run), "--config", str(conf), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOPOSCOPE_NO_PROGRESS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "toposcope", *argv], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").is_file() or '"step": 2,' not in (run / "metrics.jsonl").read_text():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr and first.stderr.read()
            time.sleep(0.02)
        assert cli_main(argv) == 2  # a second writer, while the first trains
        assert "is in use by `toposcope train` (pid" in capsys.readouterr().err
    finally:
        first.kill()  # SIGKILL: no chance to save
        first.wait(timeout=60)
    assert (run / "config.toml").is_file() and not (run / "checkpoints" / "last.pt").exists()
    res = train(corpus.root, run, config=str(conf), max_steps=3, progress=False)
    assert res["step"] == 3 and [l["step"] for l in lines(run, "train")] == [1, 2, 3]
    assert "starting it again from scratch" in capsys.readouterr().err
