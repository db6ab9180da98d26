"""Training: CTC over graphemes + λ · topographic term, Adam, length-bucketed batches.

The topographic term is docs/method.md § Regularizer; checkpoints, resuming and the run lock follow
docs/method.md § Reliability.

``train(data, out, ...)`` trains a :class:`~toposcope.model.Wav2Letter` on the ``train`` split of a
corpus directory and validates on ``valid`` (greedy decoding, CER/WER) after every epoch. It writes
the run directory (see :mod:`toposcope.checkpoint`): ``config.toml``, ``checkpoints/{last,best}.pt``,
``metrics.jsonl`` (and TensorBoard logs under ``tensorboard/`` when ``tensorboard`` is installed).

Loss per step (global batch of ``B`` utterances with ``N`` reference characters in total)::

    loss = Σ_i CTC_i / N  +  λ · Σ_layers L_layer          (L_layer: docs/method.md § Regularizer, "sum")
           [+  w · Σ_frames CE(phone head, aligned phone) / F]  (only with a ``[phone_head]``: F labelled frames)

Dividing by the *global* character count (and the phone head's by the global count of labelled frames),
all-reduced, makes the gradient of ``P`` DDP processes, each holding ``B/P`` utterances padded to the global
batch length, equal to one process's.

Structure: :class:`TrainState` is everything a checkpoint holds (``state_dict()`` /
``load_state_dict()``), :class:`MetricsLog` is ``metrics.jsonl`` (+ TensorBoard), and a private
``_Trainer`` runs the loop, one optimizer step per ``_step(batch)``.

Stopping and resuming:
* ``resume=True`` restores model, optimizer, LR schedule position (step, elapsed time), all RNG
  states and the position inside the epoch; the batch order of an epoch is a pure function of
  ``(seed, epoch)``, so a resumed run takes the very same steps as an uninterrupted one. Lines of
  ``metrics.jsonl`` logged after that checkpoint, and a torn last line, are dropped.
* A run folder whose run was killed before its first checkpoint (``config.toml``, no
  ``checkpoints/last.pt``) is started again from scratch, with a notice, with or without ``resume``.
* The run folder is locked while training (``RUN/.lock``; a second ``train`` or ``evaluate`` gets
  :class:`~toposcope.runlock.RunLockedError`); temp files of killed writers are removed at start.
* Ctrl-C (SIGINT/SIGTERM) finishes the current step, saves ``last`` and returns cleanly with
  ``stopped == "interrupted"``; a second Ctrl-C aborts at once.
* A non-finite loss raises :class:`NonFiniteLossError` before the step is applied; no checkpoint
  is written, so the last good one is intact.

LR schedule: linear warmup over ``min(warmup_steps, planned // 10)`` steps, then cosine decay to
``min_lr_ratio · lr`` at the end of the planned steps (``epochs`` × batches, capped by
``max_steps``), or at the end of the ``max_minutes`` wall-clock budget when that comes first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import distributed as D
from ._util import append_jsonl, jsonable, progress, read_jsonl, write_text_atomic
from .checkpoint import (CONFIG_FILE, METRICS_FILE, checkpoint_path, dump_toml, load_checkpoint,
                         read_run_config, run_folder_state, save_checkpoint)
from .config import ConfigError, RunConfig, load_config
from .corpus import Corpus, CorpusError
from .data import BucketBatchSampler, SpeechDataset, TrainAugment, batch_loader, load_features
from .evaluate import error_rates, transcribe
from .model import Wav2Letter
from .runlock import LOCK_FILE, RunLockedError, run_lock

__all__ = ["train", "TrainState", "MetricsLog", "Schedule", "NonFiniteLossError", "resolve_config", "lr_at",
           "ctc_loss_sum", "RESUMABLE_KEYS"]

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
                   seed=None, augment: bool | None = None) -> RunConfig:
    """A RunConfig from a name, a TOML path or a RunConfig, with command-line overrides applied
    (``augment``: turn the ``[augment]`` table on or off)."""
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    if augment is not None:
        cfg = dataclasses.replace(cfg, augment=dataclasses.replace(cfg.augment, enabled=bool(augment)))
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


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The learning-rate schedule of a run (see :func:`lr_at`); stored in ``last.pt`` as ``scheduler``."""

    kind: str
    planned_steps: int
    warmup_steps: int
    budget_s: float = 0.0

    def lr(self, base: float, min_ratio: float, step: int, elapsed_s: float) -> float:
        return lr_at(step, elapsed_s, base=base, planned=self.planned_steps, warmup=self.warmup_steps,
                     schedule=self.kind, min_ratio=min_ratio, budget_s=self.budget_s)


@dataclasses.dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped (docs/method.md § Reliability).

    ``state_dict()`` is the content of ``checkpoints/last.pt`` (plain tensors and Python scalars, loadable
    with ``weights_only=True``): model, optimizer, LR schedule position (``scheduler``: kind, planned and
    warmup steps, elapsed seconds, time budget), ``step`` (optimizer steps taken), ``epoch`` (epochs
    completed), ``batch_in_epoch`` (the sampler position inside the current epoch), the RNG states of
    every process (``rng_ranks``; ``rng`` is rank 0's), the best validation CER so far and the latest
    validation metrics. ``load_state_dict()`` restores all of it, this process's RNG state included.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: RunConfig
    schedule: Schedule
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_s: float = 0.0
    best_cer: float = math.inf
    last_valid: dict | None = None

    def snapshot(self) -> dict:
        """What ``checkpoints/best.pt`` holds: model, config, step, epoch and the validation metrics."""
        return {"model": self.model.state_dict(), "config": self.config.to_dict(), "step": self.step,
                "epoch": self.epoch, "metrics": self.last_valid}

    def state_dict(self, *, rng_ranks: list[dict] | None = None) -> dict:
        """The full training state; ``rng_ranks``: every process's RNG state (default: this process's)."""
        rngs = [_rng_state()] if rng_ranks is None else list(rng_ranks)
        return {**self.snapshot(), "batch_in_epoch": self.batch_in_epoch, "optimizer": self.optimizer.state_dict(),
                "scheduler": {"kind": self.schedule.kind, "planned_steps": self.schedule.planned_steps,
                              "warmup_steps": self.schedule.warmup_steps, "elapsed_s": self.elapsed_s,
                              "budget_s": self.schedule.budget_s},
                "rng": rngs[0], "rng_ranks": rngs, "world_size": len(rngs), "best_cer": self.best_cer}

    def load_state_dict(self, state: dict, *, rank: int = 0, world_size: int = 1) -> None:
        """Restore from :meth:`state_dict` output; process ``rank`` of ``world_size`` takes its RNG state
        (a run resumed with another number of processes gives every process rank 0's state)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
        self.elapsed_s = float(state.get("scheduler", {}).get("elapsed_s", 0.0))
        self.best_cer = float(state.get("best_cer", math.inf))
        self.last_valid = state.get("metrics")
        rngs = state.get("rng_ranks") or [state["rng"]]
        _set_rng_state(rngs[rank] if len(rngs) == world_size else rngs[0])


class MetricsLog:
    """``RUN/metrics.jsonl``: one strict-JSON object per line, ``"train"`` and ``"valid"`` lines.

    Lines are appended one ``write`` each (:func:`toposcope._util.append_jsonl`), so a kill can tear at most
    the last line; reading (:meth:`read`) skips such a torn line. Scalars are mirrored to TensorBoard
    (``RUN/tensorboard/``) when ``tensorboard`` is installed. A disabled log (DDP ranks > 0) writes nothing.
    """

    def __init__(self, run_dir, *, enabled: bool = True, tensorboard: bool = True):
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except Exception:  # tensorboard not installed: metrics.jsonl only
                self._tb = None

    @staticmethod
    def read(path) -> list[dict]:
        """The lines of a metrics file (a run folder or the file itself); a torn line is skipped."""
        path = Path(path)
        return read_jsonl(path / METRICS_FILE if path.is_dir() else path, tolerant=True)

    def keep_until(self, step: int) -> None:
        """Drop the lines of steps after ``step`` (logged after the checkpoint being resumed) and torn lines."""
        if self.enabled and self.path.exists():
            keep = [ln for ln in self.read(self.path) if isinstance(ln, dict) and ln.get("step", 0) <= step]
            write_text_atomic(self.path, "".join(json.dumps(jsonable(ln), ensure_ascii=False, allow_nan=False) + "\n"
                                                 for ln in keep))  # NaN of older files -> null

    def clear(self) -> None:
        """Start an empty log (a run started from scratch)."""
        if self.enabled:
            self.path.unlink(missing_ok=True)

    def append(self, line: dict) -> None:
        if not self.enabled:
            return
        append_jsonl(self.path, line)
        if self._tb is not None:
            kind = line["kind"]
            for k, v in line.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self._tb.add_scalar(f"{kind}/{k}", v, line["step"])
            for layer, v in line.get("similarity", {}).items():
                self._tb.add_scalar(f"similarity/{layer}", v, line["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def train(data, out, *, config="small", topo_weight: float | None = None, epochs: int | None = None,
          max_steps: int | None = None, max_minutes: float | None = None, resume: bool = False,
          seed: int | None = None, progress: bool = True, device=None, cache=True,
          augment: bool | None = None, callback: Callable[[dict], None] | None = None) -> dict:
    """Train a topographic Wav2Letter on corpus ``data`` into run directory ``out``.

    ``config``: shipped name (``tiny``/``small``/``paper``), TOML path, or :class:`RunConfig`;
    ``None`` means the run's stored config when resuming, else ``small``. ``topo_weight`` (λ),
    ``epochs``, ``max_steps``, ``max_minutes`` and ``seed`` override the config's ``[train]`` table;
    ``augment`` turns its ``[augment]`` table on or off (:mod:`toposcope.augment`).
    ``callback(info)`` is called after every step with ``{"step", "epoch", "loss", "ctc", "topo", "lr"}``.

    The run folder (see :func:`toposcope.checkpoint.run_folder_state`): a new folder is started; one
    with a checkpoint is continued with ``resume=True`` and refused without; one whose run was killed
    before its first checkpoint is started again from scratch (with a notice), with or without
    ``resume``. Rank 0 holds the folder's lock (:func:`toposcope.runlock.run_lock`) while training.

    Returns the final metrics: ``{"step", "epoch", "loss", "ctc", "topo", "cer", "wer", "best_cer",
    "similarity", "stopped", "elapsed_s", "run"}`` (``stopped``: ``"done"``, ``"max_steps"``,
    ``"max_minutes"`` or ``"interrupted"``).
    """
    out = Path(out)
    dist = D.setup(device)
    try:
        # every check that needs no writing comes first: a refused run leaves no folder behind
        cfg, start = _plan(out, config, resume, topo_weight=topo_weight, epochs=epochs, max_steps=max_steps,
                           max_minutes=max_minutes, seed=seed, augment=augment)
        corpus = data if isinstance(data, Corpus) else Corpus.load(data, alignments=False)
        if not corpus.split("train"):
            raise CorpusError(f"{corpus.root}: the corpus has no 'train' utterances (splits: "
                              f"{ {s: len(corpus.split(s)) for s in ('train', 'valid', 'test')} })")
        _seed_everything(cfg.train.seed)
        model = Wav2Letter(cfg.model)
        frames_1s = int(cfg.model.features.sample_rate / cfg.model.features.hop)
        if int(model.output_lengths(torch.tensor([frames_1s]))[0]) < 1:
            raise ConfigError(f"config {cfg.model.name!r}: impossible sizes, a 1 s input gives no output frames "
                              f"(kernels/strides too large)")
        with _locked(out, dist):
            if dist.is_main and run_folder_state(out) != _STATE_OF[start]:
                raise RunLockedError(f"{out}: the run folder changed while this run was starting (another "
                                     f"`toposcope train`?); try again")
            trainer = _Trainer(cfg, corpus, model, out, dist, start, progress=progress, cache=cache,
                               callback=callback)
            try:
                return trainer.run()
            finally:
                trainer.close()
    finally:
        D.teardown(dist)


#: How training starts, by what the run folder holds (``run_folder_state``).
_STATE_OF = {"new": "new", "restart": "unstarted", "resume": "resumable"}


def _plan(out: Path, config, resume: bool, **overrides) -> tuple[RunConfig, str]:
    """The config and how to start (``"new"``, ``"restart"`` or ``"resume"``), from ``out`` as it is now."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a directory")
    state = run_folder_state(out)
    if state == "resumable" and not resume:
        raise FileExistsError(f"{out}: already holds a training run; pass --resume to continue it, "
                              f"or choose a new --out")
    if state == "new" and resume:
        raise FileNotFoundError(f"{out}: nothing to resume ({checkpoint_path(out, 'last')} not found)")
    if state != "resumable":
        if config is None:
            config = read_run_config(out) if (resume and (out / CONFIG_FILE).is_file()) else "small"
        return resolve_config(config, **overrides), ("new" if state == "new" else "restart")
    stored = read_run_config(out)
    cfg = resolve_config(stored if config is None else config, **overrides)
    diffs = _config_diff(stored, cfg)
    if diffs:
        raise ConfigError(f"{out}: the run holds a different config than requested; refusing to resume "
                          f"({'; '.join(diffs)}). Resume without --config (or with the same one), or "
                          f"use a new --out")
    return cfg, "resume"


@contextlib.contextmanager
def _locked(out: Path, dist: D.DistInfo):
    """Rank 0 holds ``out``'s run lock; a folder this call created and left empty is removed again."""
    if not dist.is_main:
        yield
        return
    created = not out.exists()
    try:
        with run_lock(out, "train"):
            yield
    except BaseException:
        if created and out.is_dir() and {p.name for p in out.iterdir()} <= {LOCK_FILE}:
            shutil.rmtree(out, ignore_errors=True)
        raise


class _Trainer:
    """One training run in a locked run folder: set-up in ``__init__``, the loop in :meth:`run`, one
    optimizer step in :meth:`_step`; :meth:`close` releases the log files (once)."""

    def __init__(self, cfg: RunConfig, corpus: Corpus, model: Wav2Letter, out: Path, dist: D.DistInfo,
                 start: str, *, progress: bool, cache, callback):
        self.cfg, self.tc, self.out, self.dist = cfg, cfg.train, out, dist
        self.main, self.start, self.callback, self.progress = dist.is_main, start, callback, progress
        self.model = model
        tc = self.tc

        # -- features (rank 0 computes and caches, the others then load) -----------------------------
        if self.main:
            store = load_features(corpus, cfg.model.features, cache=cache, progress=progress)
        D.barrier(dist)
        if not self.main:
            store = load_features(corpus, cfg.model.features, cache=cache, progress=False)
        self.train_ds = SpeechDataset(corpus.split("train"), store, output_lengths=model.output_lengths)
        self.valid_ds = SpeechDataset(corpus.split("valid"), store, output_lengths=model.output_lengths)
        skipped = self.train_ds.skipped
        if skipped:
            self.say(f"skipped {len(skipped)} training utterance(s), e.g. {skipped[0][0]}: {skipped[0][1]}")
        if not len(self.train_ds) and skipped:
            raise ConfigError(f"config {cfg.model.name!r}: impossible sizes for this corpus: no training utterance "
                              f"gives the model enough output frames for CTC (e.g. {skipped[0][0]}: "
                              f"{skipped[0][1]}); reduce the strides")
        if len(self.train_ds) < dist.world_size:
            raise CorpusError(f"{corpus.root}: only {len(self.train_ds)} usable training utterance(s) "
                              f"for {dist.world_size} process(es)")
        fsec = cfg.model.features.frame_seconds
        self.sampler = BucketBatchSampler(self.train_ds.lengths, tc.batch_size,
                                          max_frames=int(tc.max_batch_seconds / fsec) if tc.max_batch_seconds else 0,
                                          shuffle=True, seed=tc.seed, rank=dist.rank, world_size=dist.world_size,
                                          sorted_epochs=tc.sorted_epochs)
        self.steps_per_epoch = len(self.sampler)
        self.augment = self._augment(cfg, corpus, model) if cfg.augment.enabled else None
        self.phone_segments = self._phone_segments(corpus) if cfg.model.phone_head.enabled else None
        planned = self.steps_per_epoch * tc.epochs
        if tc.max_steps:
            planned = min(planned, tc.max_steps)
        schedule = Schedule(tc.schedule, planned, min(tc.warmup_steps, planned // 10), 60.0 * tc.max_minutes)

        # -- model, regularizer, optimizer, state ------------------------------------------------------
        from .topography import TopographicRegularizer

        model.to(dist.device)
        self.reg = TopographicRegularizer(model, weight=tc.topo_weight, neighborhood=tc.neighborhood,
                                          boundary=tc.boundary, reduction="sum", on="weights")
        opt = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        self.state = st = TrainState(model, opt, cfg, schedule)
        if start == "resume":
            # RNG states must stay on CPU
            st.load_state_dict(load_checkpoint(checkpoint_path(out, "last"), map_location="cpu"),
                               rank=dist.rank, world_size=dist.world_size)
            if st.batch_in_epoch >= self.steps_per_epoch:
                st.epoch, st.batch_in_epoch = st.epoch + 1, 0
            self.say(f"resuming {out} at step {st.step} (epoch {st.epoch + 1}, batch {st.batch_in_epoch})")
        else:
            # Different dropout masks per rank, identical initial weights (seeded above).
            torch.manual_seed(tc.seed + 7919 * dist.rank)
        self.ddp = model
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(model, device_ids=[dist.device] if dist.device.type == "cuda" else None)

        # -- outputs -----------------------------------------------------------------------------------
        if self.main:
            if start == "restart":
                self.say(f"{out} holds a run stopped before its first checkpoint; starting it again from scratch")
                checkpoint_path(out, "best").unlink(missing_ok=True)
                shutil.rmtree(out / "tensorboard", ignore_errors=True)
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out / CONFIG_FILE, dump_toml(cfg.to_dict()))
        self.log = MetricsLog(out, enabled=self.main)
        if start == "resume":
            self.log.keep_until(st.step)  # drop lines from steps that the checkpoint does not hold
        else:
            self.log.clear()
        self.last_loss: dict = {}
        self._elapsed0, self._t0 = st.elapsed_s, time.monotonic()

    def _augment(self, cfg: RunConfig, corpus: Corpus, model) -> TrainAugment:
        """The augmenter of the training split. An item may get a speed factor > 1 only if the shortened
        input still gives CTC enough output frames (one frame of margin for rounding)."""
        from .augment import Augmenter

        lengths = torch.tensor(self.train_ds.lengths, dtype=torch.long)
        need = torch.tensor(self.train_ds.ctc_need, dtype=torch.long)
        max_speed = torch.ones(len(lengths))
        for s in sorted(cfg.augment.speeds):
            if s > 1.0:
                fits = model.output_lengths(torch.div(lengths, s, rounding_mode="floor").long() - 1) >= need
                max_speed[fits] = s
        aug = Augmenter(cfg.augment, cfg.model.features, seed=cfg.train.seed, max_speed=max_speed.tolist())
        self.say(f"augmentation on: speeds {list(cfg.augment.speeds)}, noise p={cfg.augment.noise_prob:g}, "
                 f"reverb p={cfg.augment.reverb_prob:g} ({aug.engine or 'off'}), VTLP p={cfg.augment.vtlp_prob:g}, "
                 f"SpecAugment {cfg.augment.time_masks}+{cfg.augment.freq_masks} masks")
        return TrainAugment(aug, tuple(str(corpus.audio_path(u)) for _, _, u in self.train_ds.items))

    def _phone_segments(self, corpus: Corpus) -> dict[str, list]:
        """Phone alignments of the training items (every manifest line has them), the phone head's targets;
        training otherwise loads the corpus without them."""
        full = corpus if corpus.alignments else Corpus.load(corpus.root, alignments=True)
        by_id = {u.id: u.phones for u in full.split("train")}
        ph = self.cfg.model.phone_head
        self.say(f"phone head on {ph.layer}: frame-level phone cross-entropy, weight {ph.weight:g}")
        return {uid: by_id[uid] for uid, _, _ in self.train_ds.items}

    def _phone_loss(self, b, phone_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross-entropy of ``phone_logits (B, T_layer, 40)`` against the aligned phones of batch ``b``
        (:func:`toposcope.labels.phone_targets`; frames without a phone do not count) and the number of
        frames that counted, both over this process's share."""
        from .labels import phone_targets

        model, feats = self.model, self.cfg.model.features
        layer = self.cfg.model.phone_head.layer
        n_valid = model.layer_lengths(layer, b.lengths.cpu())
        orig = [self.train_ds.store.frames(u.id) for u in b.utterances]  # speed perturbation changes lengths
        scale = [o / max(int(n), 1) for o, n in zip(orig, b.lengths.tolist())]
        y = phone_targets([self.phone_segments[u.id] for u in b.utterances], n_valid.tolist(), phone_logits.shape[1],
                          model.geometry(layer), feats.hop, feats.sample_rate, time_scale=scale)
        y = torch.from_numpy(y).to(phone_logits.device)
        ce = F.cross_entropy(phone_logits.transpose(1, 2), y, ignore_index=-1, reduction="sum")
        return ce, (y >= 0).sum()

    # -- small helpers -----------------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        if self.main:
            print(f"toposcope train: {msg}", file=sys.stderr)

    def elapsed(self) -> float:
        """Seconds of training, summed over the sessions of a resumed run."""
        return self._elapsed0 + time.monotonic() - self._t0

    def similarities(self) -> dict:
        return {k: float(v) for k, v in self.reg.similarities().items()}

    def close(self) -> None:
        self.log.close()

    # -- one step ----------------------------------------------------------------------------------------
    def _step(self, gbatch) -> dict:
        """One optimizer step on global batch ``gbatch`` (this process's share as a collated :class:`Batch`).

        Loss = Σ_i CTC_i / N_global + λ · Σ_layers L_layer [+ w · phone CE] (module docstring). Raises
        :class:`NonFiniteLossError` before applying a non-finite step. Returns ``{"loss", "ctc", "topo", "lr"}``
        and ``"phone"`` (mean CE per labelled frame) with a phone head (global values, identical on every process).
        """
        st, tc, dist, model = self.state, self.tc, self.dist, self.model
        lr = st.schedule.lr(tc.lr, tc.min_lr_ratio, st.step, self.elapsed())
        for g in st.optimizer.param_groups:
            g["lr"] = lr
        b = gbatch.to(dist.device)  # this process's share, padded to the global batch (data.batch_loader)
        if self.phone_segments is None:
            logp = self.ddp(b.feats, b.lengths)  # (B_local, T', n_classes); padding masked per layer
        else:
            logp, phone_logits = self.ddp(b.feats, b.lengths, phones=True)
        n_out = model.output_lengths(b.lengths)
        ctc_sum = ctc_loss_sum(logp, b.targets, n_out, b.target_lengths)
        n_chars = D.all_reduce_sum(b.target_lengths.sum().to(torch.float64), dist).to(logp.dtype)
        ctc = ctc_sum / n_chars
        topo = self.reg.loss() if tc.topo_weight > 0 else torch.zeros((), device=dist.device)
        loss = ctc * dist.world_size + topo
        if self.phone_segments is not None:  # mean over the global batch's labelled frames, like CTC's mean
            ce_sum, n_lab = self._phone_loss(b, phone_logits)
            n_lab = D.all_reduce_sum(n_lab.to(torch.float64), dist).clamp_min(1.0).to(logp.dtype)
            loss = loss + self.cfg.model.phone_head.weight * (ce_sum / n_lab) * dist.world_size
        bad = float(D.all_reduce_max(torch.tensor(0.0 if torch.isfinite(loss).item() else 1.0), dist))
        if bad:
            where = checkpoint_path(self.out, "last")
            held = (f"the last good checkpoint {where} (step {load_checkpoint(where)['step']}) is intact"
                    if self.main and where.is_file() else "no checkpoint had been written yet")
            raise NonFiniteLossError(
                f"non-finite loss (ctc={float(ctc_sum.detach()):.4g}, topo={float(topo.detach()):.4g}) at step "
                f"{st.step + 1} (epoch {st.epoch + 1}); stopped without applying it: {held}. "
                f"Try a lower learning rate or topo weight.")
        st.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        st.optimizer.step()
        st.step += 1
        st.batch_in_epoch += 1
        ctc_global = float(D.all_reduce_sum(ctc_sum.detach().to(torch.float64), dist)) / float(n_chars)
        topo_v = float(topo.detach())
        out = {"loss": ctc_global + topo_v, "ctc": ctc_global, "topo": topo_v, "lr": lr}
        if self.phone_segments is not None:
            phone = float(D.all_reduce_sum(ce_sum.detach().to(torch.float64), dist)) / float(n_lab)
            out["phone"] = phone
            out["loss"] += self.cfg.model.phone_head.weight * phone
        return out

    # -- validation and checkpoints ------------------------------------------------------------------------
    def _validate(self) -> dict | None:
        """Rank 0 decodes the valid split; saves ``best`` when CER improves. Returns the valid line."""
        st, line = self.state, None
        if self.main:
            if len(self.valid_ds):
                pairs = transcribe(self.model, self.valid_ds, batch_size=16, progress=False)  # = evaluate()
                cer, wer = error_rates([r for r, _ in pairs], [h for _, h in pairs])
                line = {"kind": "valid", "step": st.step, "epoch": st.epoch, "cer": cer, "wer": wer,
                        "similarity": self.similarities()}
                self.log.append(line)
                st.last_valid = {"cer": cer, "wer": wer}
                improved = cer < st.best_cer
            else:
                improved, cer = True, math.inf  # no valid split: best = latest
            if improved:
                st.best_cer = min(st.best_cer, cer)
                save_checkpoint(checkpoint_path(self.out, "best"), st.snapshot())
        st.best_cer = float(D.broadcast_object(st.best_cer, self.dist))
        return line

    def _save_last(self) -> None:
        rngs = D.all_gather_object(_rng_state(), self.dist)
        self.state.elapsed_s = self.elapsed()
        if self.main:
            save_checkpoint(checkpoint_path(self.out, "last"), self.state.state_dict(rng_ranks=rngs))

    def _stop_reason(self, flag: _StopFlag) -> str | None:
        """Why to stop before the next step (the same answer on every process), or ``None``."""
        tc, dist = self.tc, self.dist
        if tc.max_steps and self.state.step >= tc.max_steps:
            return "max_steps"
        budget_s = self.state.schedule.budget_s
        if budget_s and float(D.all_reduce_max(torch.tensor(self.elapsed()), dist)) >= budget_s:
            return "max_minutes"
        if float(D.all_reduce_max(torch.tensor(float(flag.set)), dist)) > 0:
            return "interrupted"
        return None

    # -- the loop ------------------------------------------------------------------------------------------
    def run(self) -> dict:
        st, tc = self.state, self.tc
        bar = progress(None, enabled=self.main and self.progress, leave=True, total=st.schedule.planned_steps,
                       initial=min(st.step, st.schedule.planned_steps), desc="train", unit="step",
                       dynamic_ncols=True)
        stopped, saved_any = None, self.start == "resume"
        self.model.train()
        try:
            with _StopFlag(verbose=self.main) as flag:
                while stopped is None:
                    if st.epoch >= tc.epochs:
                        stopped = "done"
                        break
                    batches = batch_loader(self.train_ds, self.sampler, st.epoch, start=st.batch_in_epoch,
                                           pin_memory=self.dist.device.type == "cuda", augment=self.augment)
                    while st.batch_in_epoch < self.steps_per_epoch:
                        stopped = self._stop_reason(flag)
                        if stopped:
                            break
                        self.last_loss = self._step(next(batches))
                        bar.update(1)
                        self._after_step(bar)
                    if stopped:
                        break
                    st.epoch, st.batch_in_epoch = st.epoch + 1, 0
                    self._validate()
                    self._save_last()
                    saved_any = True
        finally:
            bar.close()

        if stopped == "interrupted":
            self._save_last()
            self.say(f"interrupted at step {st.step}; saved {checkpoint_path(self.out, 'last')} (resume with --resume)")
        elif st.batch_in_epoch > 0 or not saved_any:
            self._validate()  # partial epoch (max_steps / max_minutes), or zero epochs
            self._save_last()
        D.barrier(self.dist)
        sim = self.similarities()
        lv = st.last_valid
        result = {"step": st.step, "epoch": st.epoch, **self.last_loss,
                  "cer": None if lv is None else lv["cer"], "wer": None if lv is None else lv["wer"],
                  "best_cer": None if math.isinf(st.best_cer) else st.best_cer, "similarity": sim,
                  "stopped": stopped, "elapsed_s": self.elapsed(), "run": str(self.out)}
        if stopped != "interrupted":
            cer = "-" if result["cer"] is None else f"{100 * result['cer']:.1f}%"
            self.say(f"{stopped} after {st.step} steps ({self.elapsed():.0f} s): valid CER {cer}, "
                     f"S̄ {_mean_similarity(sim):.2f}")
        return result

    def _after_step(self, bar) -> None:
        """Log a ``"train"`` line every ``log_every`` steps (and after the first), call the callback."""
        st = self.state
        if st.step % self.tc.log_every == 0 or st.step == 1:
            sim = self.similarities()
            self.log.append({"kind": "train", "step": st.step, "epoch": st.epoch + 1, **self.last_loss,
                             "similarity": sim})
            lv = st.last_valid
            bar.set_postfix(loss=f"{self.last_loss['loss']:.3f}", cer="-" if lv is None else f"{100 * lv['cer']:.1f}%",
                            S=f"{_mean_similarity(sim):.2f}", refresh=False)
        if self.callback is not None:
            self.callback({"step": st.step, "epoch": st.epoch + 1, **self.last_loss})
