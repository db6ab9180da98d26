"""Training: CTC over graphemes + λ · topographic term, Adam, length-bucketed batches (SPEC §3, §4, §9).

``train(data, out, ...)`` trains a :class:`~toposcope.model.Wav2Letter` on the ``train`` split of a
corpus directory and validates on ``valid`` (greedy decoding, CER/WER) after every epoch. It writes
the run directory (see :mod:`toposcope.checkpoint`): ``config.toml``, ``checkpoints/{last,best}.pt``,
``metrics.jsonl`` (and TensorBoard logs under ``tensorboard/`` when ``tensorboard`` is installed).

Loss per step (global batch of ``B`` utterances with ``N`` reference characters in total)::

    loss = Σ_i CTC_i / N  +  λ · Σ_layers L_layer          (L_layer: SPEC §4, reduction "sum")

Dividing by the *global* character count (all-reduced) makes the gradient of ``P`` DDP processes,
each holding ``B/P`` utterances padded to the global batch length, equal to one process's.

Stopping and resuming:
* ``resume=True`` restores model, optimizer, LR schedule position (step, elapsed time), all RNG
  states and the position inside the epoch; the batch order of an epoch is a pure function of
  ``(seed, epoch)``, so a resumed run takes the very same steps as an uninterrupted one.
* Ctrl-C (SIGINT/SIGTERM) finishes the current step, saves ``last`` and returns cleanly with
  ``stopped == "interrupted"``; a second Ctrl-C aborts at once.
* A non-finite loss raises :class:`NonFiniteLossError` before the step is applied; no checkpoint
  is written, so the last good one is intact.

LR schedule: linear warmup over ``min(warmup_steps, planned // 10)`` steps, then cosine decay to
``min_lr_ratio · lr`` at the end of the planned steps (``epochs`` × batches, capped by
``max_steps``), or at the end of the ``max_minutes`` wall-clock budget when that comes first.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import distributed as D
from .checkpoint import (CONFIG_FILE, METRICS_FILE, checkpoint_path, dump_toml, load_checkpoint,
                         read_run_config, save_checkpoint, write_text_atomic)
from .config import ConfigError, RunConfig, load_config
from .corpus import Corpus, CorpusError
from .data import BucketBatchSampler, SpeechDataset, collate, load_features, progress_enabled
from .evaluate import error_rates, transcribe
from .model import Wav2Letter

__all__ = ["train", "NonFiniteLossError", "resolve_config", "lr_at", "ctc_loss_sum", "RESUMABLE_KEYS"]

#: ``[train]`` keys that may differ when resuming (they extend or shorten a run, not change it).
RESUMABLE_KEYS = ("epochs", "max_steps", "max_minutes", "log_every")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; training stopped before applying the step."""


def ctc_loss_sum(log_probs: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor,
                 target_lengths: torch.Tensor) -> torch.Tensor:
    """Summed CTC negative log-likelihood. ``log_probs``: ``(B, T, C)`` (blank = 0)."""
    return F.ctc_loss(log_probs.transpose(0, 1), targets, input_lengths, target_lengths, blank=0,
                      reduction="sum", zero_infinity=False)


def lr_at(step: int, elapsed_s: float, *, base: float, planned: int, warmup: int, schedule: str,
          min_ratio: float, budget_s: float = 0.0) -> float:
    """Learning rate of step ``step`` (0-based) after ``elapsed_s`` seconds of training."""
    if schedule == "constant":
        return base
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, planned - warmup)
    if budget_s > 0:
        p = max(p, elapsed_s / budget_s)
    p = min(max(p, 0.0), 1.0)
    return base * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p)))


def resolve_config(config, *, topo_weight=None, epochs=None, max_steps=None, max_minutes=None,
                   seed=None) -> RunConfig:
    """A RunConfig from a name, a TOML path or a RunConfig, with command-line overrides applied."""
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    over = {k: v for k, v in dict(topo_weight=topo_weight, epochs=epochs, max_steps=max_steps,
                                  max_minutes=max_minutes, seed=seed).items() if v is not None}
    if over:
        try:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **over))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"invalid override: {e}") from None
    return cfg


def _config_diff(stored: RunConfig, wanted: RunConfig) -> list[str]:
    a, b = stored.to_dict(), wanted.to_dict()
    for d in (a, b):
        for k in RESUMABLE_KEYS:
            d["train"].pop(k, None)
    diffs = []
    for k in sorted(set(a) | set(b)):
        if k == "train":
            for tk in sorted(set(a["train"]) | set(b["train"])):
                if a["train"].get(tk) != b["train"].get(tk):
                    diffs.append(f"train.{tk}: {a['train'].get(tk)!r} in the run, {b['train'].get(tk)!r} requested")
        elif a.get(k) != b.get(k):
            diffs.append(f"{k}: {a.get(k)!r} in the run, {b.get(k)!r} requested")
    return diffs


# -- RNG state (weights_only-loadable: tensors, ints, floats, lists) --------------------------------
def _rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    st = {"torch": torch.get_rng_state(),
          "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                    "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
          "python": {"version": py[0], "state": list(py[1]), "gauss_next": py[2]}}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = st["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


class _StopFlag:
    """First SIGINT/SIGTERM sets the flag (finish the step, save, exit); a second one aborts."""

    def __init__(self, verbose: bool):
        self.set, self.verbose, self._old = False, verbose, {}

    def _handler(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        if self.verbose:
            print("\ntoposcope train: stopping after this step and saving (Ctrl-C again to abort)",
                  file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


def _mean_similarity(sim: dict) -> float:
    return float(np.mean(list(sim.values()))) if sim else float("nan")


def train(data, out, *, config="small", topo_weight: float | None = None, epochs: int | None = None,
          max_steps: int | None = None, max_minutes: float | None = None, resume: bool = False,
          seed: int | None = None, progress: bool = True, device=None, cache=True,
          callback: Callable[[dict], None] | None = None) -> dict:
    """Train a topographic Wav2Letter on corpus ``data`` into run directory ``out``.

    ``config``: shipped name (``tiny``/``small``/``paper``), TOML path, or :class:`RunConfig`;
    ``None`` means the run's stored config when resuming, else ``small``. ``topo_weight`` (λ),
    ``epochs``, ``max_steps``, ``max_minutes`` and ``seed`` override the config's ``[train]`` table.
    ``callback(info)`` is called after every step with ``{"step", "epoch", "loss", "ctc", "topo", "lr"}``.

    Returns the final metrics: ``{"step", "epoch", "loss", "ctc", "topo", "cer", "wer", "best_cer",
    "similarity", "stopped", "elapsed_s", "run"}`` (``stopped``: ``"done"``, ``"max_steps"``,
    ``"max_minutes"`` or ``"interrupted"``).
    """
    out = Path(out)
    dist = D.setup(device)
    try:
        return _train(data, out, dist, config=config, topo_weight=topo_weight, epochs=epochs, max_steps=max_steps,
                      max_minutes=max_minutes, resume=resume, seed=seed, progress=progress, cache=cache,
                      callback=callback)
    finally:
        D.teardown(dist)


def _train(data, out: Path, dist: D.DistInfo, *, config, topo_weight, epochs, max_steps, max_minutes, resume,
           seed, progress, cache, callback) -> dict:
    main = dist.is_main
    say = (lambda msg: print(f"toposcope train: {msg}", file=sys.stderr)) if main else (lambda msg: None)

    # -- run directory and config: every check before anything is written ---------------------------
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a directory")
    has_run = (out / CONFIG_FILE).exists() or (out / "checkpoints").exists()
    if has_run and not resume:
        raise FileExistsError(f"{out}: already holds a training run; pass --resume to continue it, "
                              f"or choose a new --out")
    if resume:
        if not checkpoint_path(out, "last").is_file():
            raise FileNotFoundError(f"{out}: nothing to resume ({checkpoint_path(out, 'last')} not found)")
        stored = read_run_config(out)
        cfg = resolve_config(stored if config is None else config, topo_weight=topo_weight, epochs=epochs,
                             max_steps=max_steps, max_minutes=max_minutes, seed=seed)
        diffs = _config_diff(stored, cfg)
        if diffs:
            raise ConfigError(f"{out}: the run holds a different config than requested; refusing to resume "
                              f"({'; '.join(diffs)}). Resume without --config (or with the same one), or "
                              f"use a new --out")
    else:
        cfg = resolve_config("small" if config is None else config, topo_weight=topo_weight, epochs=epochs,
                             max_steps=max_steps, max_minutes=max_minutes, seed=seed)
    tc = cfg.train

    corpus = data if isinstance(data, Corpus) else Corpus.load(data)
    train_utts, valid_utts = corpus.split("train"), corpus.split("valid")
    if not train_utts:
        raise CorpusError(f"{corpus.root}: the corpus has no 'train' utterances (splits: "
                          f"{ {s: len(corpus.split(s)) for s in ('train', 'valid', 'test')} })")

    _seed_everything(tc.seed)
    model = Wav2Letter(cfg.model)
    frames_1s = int(cfg.model.features.sample_rate / cfg.model.features.hop)
    if int(model.output_lengths(torch.tensor([frames_1s]))[0]) < 1:
        raise ConfigError(f"config {cfg.model.name!r}: impossible sizes, a 1 s input gives no output frames "
                          f"(kernels/strides too large)")

    # -- features (rank 0 computes and caches, the others then load) ---------------------------------
    if main:
        store = load_features(corpus, cfg.model.features, cache=cache, progress=progress)
    D.barrier(dist)
    if not main:
        store = load_features(corpus, cfg.model.features, cache=cache, progress=False)
    train_ds = SpeechDataset(train_utts, store, output_lengths=model.output_lengths)
    valid_ds = SpeechDataset(valid_utts, store, output_lengths=model.output_lengths)
    if train_ds.skipped:
        say(f"skipped {len(train_ds.skipped)} training utterance(s), e.g. {train_ds.skipped[0][0]}: "
            f"{train_ds.skipped[0][1]}")
    if not len(train_ds) and train_ds.skipped:
        raise ConfigError(f"config {cfg.model.name!r}: impossible sizes for this corpus: no training utterance "
                          f"gives the model enough output frames for CTC (e.g. {train_ds.skipped[0][0]}: "
                          f"{train_ds.skipped[0][1]}); reduce the strides")
    if len(train_ds) < dist.world_size:
        raise CorpusError(f"{corpus.root}: only {len(train_ds)} usable training utterance(s) "
                          f"for {dist.world_size} process(es)")
    fsec = cfg.model.features.frame_seconds
    sampler = BucketBatchSampler(train_ds.lengths, tc.batch_size,
                                 max_frames=int(tc.max_batch_seconds / fsec) if tc.max_batch_seconds else 0,
                                 shuffle=True, seed=tc.seed, rank=dist.rank, world_size=dist.world_size)
    spe = len(sampler)
    planned = spe * tc.epochs
    if tc.max_steps:
        planned = min(planned, tc.max_steps)
    warmup = min(tc.warmup_steps, planned // 10)
    budget_s = 60.0 * tc.max_minutes

    # -- model, regularizer, optimizer --------------------------------------------------------------
    from .topography import TopographicRegularizer

    model.to(dist.device)
    reg = TopographicRegularizer(model, weight=tc.topo_weight, neighborhood=tc.neighborhood,
                                 boundary=tc.boundary, reduction="sum", on="weights")
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    step, epochs_done, batch_in_epoch, elapsed0 = 0, 0, 0, 0.0
    best_cer, last_valid = math.inf, None
    if resume:
        st = load_checkpoint(checkpoint_path(out, "last"), map_location="cpu")  # RNG states must stay on CPU
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step, epochs_done = int(st["step"]), int(st["epoch"])
        batch_in_epoch = int(st.get("batch_in_epoch", 0))
        elapsed0 = float(st.get("scheduler", {}).get("elapsed_s", 0.0))
        best_cer = float(st.get("best_cer", math.inf))
        last_valid = st.get("metrics")
        rngs = st.get("rng_ranks") or [st["rng"]]
        _set_rng_state(rngs[dist.rank] if len(rngs) == dist.world_size else rngs[0])
        if batch_in_epoch >= spe:
            epochs_done, batch_in_epoch = epochs_done + 1, 0
        say(f"resuming {out} at step {step} (epoch {epochs_done + 1}, batch {batch_in_epoch})")
    else:
        # Different dropout masks per rank, identical initial weights (seeded above).
        torch.manual_seed(tc.seed + 7919 * dist.rank)
    ddp = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[dist.device] if dist.device.type == "cuda" else None)

    # -- outputs ---------------------------------------------------------------------------------------
    metrics_path = out / METRICS_FILE
    tb = None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / CONFIG_FILE, dump_toml(cfg.to_dict()))
        if resume and metrics_path.exists():  # drop lines from steps that the checkpoint does not hold
            keep = [ln for ln in metrics_path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= step]
            write_text_atomic(metrics_path, "".join(k + "\n" for k in keep))
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # tensorboard not installed: metrics.jsonl only
            tb = None
    mfile = open(metrics_path, "a", encoding="utf-8") if main else None

    def log(line: dict) -> None:
        if mfile is not None:
            mfile.write(json.dumps(line) + "\n")
            mfile.flush()
        if tb is not None:
            kind = line["kind"]
            for k, v in line.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    tb.add_scalar(f"{kind}/{k}", v, line["step"])
            for layer, v in line.get("similarity", {}).items():
                tb.add_scalar(f"similarity/{layer}", v, line["step"])

    def sims() -> dict:
        return {k: float(v) for k, v in reg.similarities().items()}

    def state_common() -> dict:
        return {"model": model.state_dict(), "config": cfg.to_dict(), "step": step, "epoch": epochs_done}

    def save_last() -> None:
        rngs = D.all_gather_object(_rng_state(), dist)
        if main:
            save_checkpoint(checkpoint_path(out, "last"), {
                **state_common(), "batch_in_epoch": batch_in_epoch, "optimizer": opt.state_dict(),
                "scheduler": {"kind": tc.schedule, "planned_steps": planned, "warmup_steps": warmup,
                              "elapsed_s": elapsed(), "budget_s": budget_s},
                "rng": rngs[0], "rng_ranks": rngs, "world_size": dist.world_size, "best_cer": best_cer,
                "metrics": last_valid})

    def validate() -> dict | None:
        """Rank 0 decodes the valid split; saves ``best`` when CER improves. Returns the valid line."""
        nonlocal best_cer, last_valid
        line = None
        if main:
            if len(valid_ds):
                pairs = transcribe(model, valid_ds, batch_size=16, progress=False)  # = evaluate()
                cer, wer = error_rates([r for r, _ in pairs], [h for _, h in pairs])
                line = {"kind": "valid", "step": step, "epoch": epochs_done, "cer": cer, "wer": wer,
                        "similarity": sims()}
                log(line)
                last_valid = {"cer": cer, "wer": wer}
                improved = cer < best_cer
            else:
                improved, cer = True, math.inf  # no valid split: best = latest
            if improved:
                best_cer = min(best_cer, cer)
                save_checkpoint(checkpoint_path(out, "best"), {**state_common(), "metrics": last_valid})
        best_cer = float(D.broadcast_object(best_cer, dist))
        return line

    t_start = time.monotonic()

    def elapsed() -> float:
        return elapsed0 + time.monotonic() - t_start

    from tqdm.auto import tqdm

    bar = tqdm(total=planned, initial=min(step, planned), desc="train", unit="step", dynamic_ncols=True,
               disable=not (main and progress_enabled(progress)))
    stopped, last_loss, saved_any = None, {}, bool(resume)
    model.train()
    with _StopFlag(verbose=main) as flag:
        try:
            while stopped is None:
                if epochs_done >= tc.epochs:
                    stopped = "done"
                    break
                batches = sampler.epoch_batches(epochs_done)
                while batch_in_epoch < spe:
                    if tc.max_steps and step >= tc.max_steps:
                        stopped = "max_steps"
                    elif budget_s and float(D.all_reduce_max(torch.tensor(elapsed()), dist)) >= budget_s:
                        stopped = "max_minutes"
                    elif float(D.all_reduce_max(torch.tensor(float(flag.set)), dist)) > 0:
                        stopped = "interrupted"
                    if stopped:
                        break
                    lr = lr_at(step, elapsed(), base=tc.lr, planned=planned, warmup=warmup, schedule=tc.schedule,
                               min_ratio=tc.min_lr_ratio, budget_s=budget_s)
                    for g in opt.param_groups:
                        g["lr"] = lr
                    gbatch = batches[batch_in_epoch]
                    pad_to = max(train_ds.lengths[i] for i in gbatch)
                    b = collate([train_ds[i] for i in sampler.local(gbatch)], pad_to=pad_to).to(dist.device)
                    logp = ddp(b.feats)  # (B_local, T', n_classes)
                    n_out = model.output_lengths(b.lengths)
                    ctc_sum = ctc_loss_sum(logp, b.targets, n_out, b.target_lengths)
                    n_chars = D.all_reduce_sum(b.target_lengths.sum().to(torch.float64), dist).to(logp.dtype)
                    ctc = ctc_sum / n_chars
                    topo = reg.loss() if tc.topo_weight > 0 else torch.zeros((), device=dist.device)
                    loss = ctc * dist.world_size + topo
                    bad = float(D.all_reduce_max(torch.tensor(0.0 if torch.isfinite(loss).item() else 1.0), dist))
                    if bad:
                        where = checkpoint_path(out, "last")
                        held = (f"the last good checkpoint {where} (step {load_checkpoint(where)['step']}) is intact"
                                if main and where.is_file() else "no checkpoint had been written yet")
                        raise NonFiniteLossError(
                            f"non-finite loss (ctc={float(ctc_sum.detach()):.4g}, topo={float(topo.detach()):.4g}) at step {step + 1} "
                            f"(epoch {epochs_done + 1}); stopped without applying it: {held}. "
                            f"Try a lower learning rate or topo weight.")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if tc.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                    opt.step()
                    step += 1
                    batch_in_epoch += 1
                    bar.update(1)
                    ctc_global = float(D.all_reduce_sum(ctc_sum.detach().to(torch.float64), dist)) / float(n_chars)
                    topo_v = float(topo.detach())
                    last_loss = {"loss": ctc_global + topo_v, "ctc": ctc_global, "topo": topo_v, "lr": lr}
                    if step % tc.log_every == 0 or step == 1:
                        sim = sims()
                        log({"kind": "train", "step": step, "epoch": epochs_done + 1, **last_loss, "similarity": sim})
                        bar.set_postfix(loss=f"{last_loss['loss']:.3f}",
                                        cer="-" if last_valid is None else f"{100 * last_valid['cer']:.1f}%",
                                        S=f"{_mean_similarity(sim):.2f}", refresh=False)
                    if callback is not None:
                        callback({"step": step, "epoch": epochs_done + 1, **last_loss})
                if stopped:
                    break
                epochs_done, batch_in_epoch = epochs_done + 1, 0
                validate()
                save_last()
                saved_any = True
        except BaseException:  # non-finite loss, second Ctrl-C, ...: checkpoints stay as they are
            if mfile:
                mfile.close()
            if tb is not None:
                tb.close()
            raise
        finally:
            bar.close()

    if stopped == "interrupted":
        save_last()
        say(f"interrupted at step {step}; saved {checkpoint_path(out, 'last')} (resume with --resume)")
    elif batch_in_epoch > 0 or not saved_any:
        validate()  # partial epoch (max_steps / max_minutes), or zero epochs
        save_last()
    D.barrier(dist)
    if mfile:
        mfile.close()
    if tb is not None:
        tb.close()
    sim = sims()
    result = {"step": step, "epoch": epochs_done, **last_loss,
              "cer": None if last_valid is None else last_valid["cer"],
              "wer": None if last_valid is None else last_valid["wer"],
              "best_cer": None if math.isinf(best_cer) else best_cer, "similarity": sim,
              "stopped": stopped, "elapsed_s": elapsed(), "run": str(out)}
    if main and stopped != "interrupted":
        cer = "-" if result["cer"] is None else f"{100 * result['cer']:.1f}%"
        say(f"{stopped} after {step} steps ({elapsed():.0f} s): valid CER {cer}, "
            f"S̄ {_mean_similarity(sim):.2f}")
    return result
