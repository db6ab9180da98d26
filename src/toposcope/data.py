"""Features once, then batches: feature store, dataset, length-bucketed batches, padded collate.

* :func:`load_features` extracts the log-mel of every utterance of a corpus once per
  :class:`FeatureConfig` into on-disk shards under ``<corpus>/.cache/features-<cfgkey>/``
  (:mod:`toposcope.shards`: parallel ``jobs``, resumable, an utterance is re-extracted when its audio
  file's size or mtime changes) and returns a :class:`~toposcope.shards.ShardedFeatureStore` that reads
  each utterance lazily; only metadata stays in memory. ``cache=False`` computes everything into an
  in-memory :class:`FeatureStore` (the old path; memory grows with the corpus).
* :class:`SpeechDataset` pairs features with encoded transcripts; ``dataset[i]`` reads item ``i``.
* :class:`BucketBatchSampler` sorts by length and cuts *global* batches (by count and/or total
  seconds); each epoch shuffles the batch order with a generator seeded by ``(seed, epoch)`` (no
  hidden RNG state, so resuming at ``(epoch, batch)`` is exact). Under DDP every rank sees the same
  global batches and takes the slice ``batch[rank::world_size]``.
* :func:`batch_loader` reads one epoch's batches (from a given batch on) through a
  ``torch.utils.data.DataLoader`` with worker processes; :func:`iter_feature_batches` is the one
  loader for analysis passes (profiles, optimal inputs, exemplars).
* :func:`collate` pads to a common length (optionally the global batch's), returning lengths.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ._util import progress_enabled
from .audio import read_audio
from .corpus import Corpus, CorpusError, Utterance
from .features import FeatureConfig, log_mel
from .shards import SHARD_MB, ShardedFeatureStore, ShardError, open_store, store_dir, verify_store
from .text import encode, normalize_text

__all__ = ["FeatureStore", "ShardedFeatureStore", "ShardError", "load_features", "SpeechDataset", "Batch",
           "BucketBatchSampler", "collate", "batch_loader", "EpochBatches", "iter_feature_batches",
           "default_workers", "default_jobs", "extract_features", "cache_key", "progress_enabled", "TrainAugment"]


# -- feature cache ---------------------------------------------------------------------------------
def cache_key(corpus: Corpus, cfg: FeatureConfig) -> str:
    """Hash of the feature config and each utterance's id, audio path, file size and mtime."""
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    for u in corpus:
        p = corpus.audio_path(u)
        try:
            st = p.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except FileNotFoundError:
            stamp = "missing"
        h.update(f"\0{u.id}\0{u.audio}\0{stamp}".encode())
    return h.hexdigest()[:16]


@dataclass
class FeatureStore:
    """Log-mel features of every utterance: ``feats[:, offsets[i]:offsets[i] + lengths[i]]``.

    ``feats``: ``(n_mels, total_frames)`` float32; ``lengths``/``offsets``: ``(n_utterances,)``.
    """

    ids: list[str]
    feats: torch.Tensor
    lengths: torch.Tensor
    offsets: torch.Tensor

    def __post_init__(self) -> None:
        self.index = {u: i for i, u in enumerate(self.ids)}

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self.index

    def frames(self, utt_id: str) -> int:
        return int(self.lengths[self.index[utt_id]])

    def get(self, utt_id: str) -> torch.Tensor:
        """``(n_mels, frames)`` of one utterance (a view)."""
        i = self.index[utt_id]
        o, n = int(self.offsets[i]), int(self.lengths[i])
        return self.feats[:, o:o + n]


def _compute(corpus: Corpus, utts: Sequence[Utterance], cfg: FeatureConfig, progress: bool) -> FeatureStore:
    from tqdm.auto import tqdm

    chunks, lengths = [], []
    for u in tqdm(utts, desc="features", unit="utt", disable=not progress_enabled(progress), leave=False):
        wave = read_audio(corpus.audio_path(u), sample_rate=cfg.sample_rate)
        f = log_mel(wave, cfg)  # (n_mels, frames)
        chunks.append(f)
        lengths.append(f.shape[1])
    lengths_t = torch.tensor(lengths, dtype=torch.long)
    offsets = torch.zeros_like(lengths_t)
    if len(lengths_t) > 1:
        offsets[1:] = torch.cumsum(lengths_t, 0)[:-1]
    feats = torch.cat(chunks, dim=1) if chunks else torch.zeros(cfg.n_mels, 0)
    return FeatureStore([u.id for u in utts], feats.contiguous(), lengths_t, offsets)


def default_jobs() -> int:
    """Extraction processes: ``TOPOSCOPE_JOBS`` when set, else 1."""
    try:
        return max(1, int(os.environ.get("TOPOSCOPE_JOBS", "1")))
    except ValueError:
        return 1


def load_features(corpus: Corpus, cfg: FeatureConfig, *, cache: bool | str | Path = True,
                  progress: bool = True, jobs: int | None = None, repair: bool = False,
                  utterances: Sequence[Utterance] | None = None, extract: bool = True,
                  shard_mb: float = SHARD_MB):
    """Features of the utterances of ``corpus`` (default: all), extracted once into on-disk shards.

    ``cache=True`` keeps the shards in ``<corpus>/.cache/``; a path uses that directory; ``False``
    computes an in-memory :class:`FeatureStore` without writing anything. ``jobs``: extraction
    processes (default :func:`default_jobs`). ``repair``: CRC-check every shard and recompute bad ones
    (without it a truncated or corrupt shard is a :class:`ShardError` naming the file). ``extract=False``
    refuses to compute missing features (a :class:`ShardError`). ``shard_mb``: target shard size. An unwritable cache directory only
    costs the caching (a note on stderr, then the in-memory path). Returns a
    :class:`~toposcope.shards.ShardedFeatureStore` (lazy) or a :class:`FeatureStore`.
    """
    utts = list(corpus if utterances is None else utterances)
    if cache is False:
        return _compute(corpus, utts, cfg, progress)
    cache_dir = Path(corpus.root) / ".cache" if cache is True else Path(cache)
    try:
        return open_store(store_dir(cache_dir, cfg), corpus, utts, cfg, jobs=jobs or default_jobs(), repair=repair,
                          shard_mb=shard_mb, progress_bar=progress_enabled(progress), extract_missing=extract)
    except PermissionError as e:
        print(f"toposcope: could not write the feature cache in {cache_dir} ({e}); computing in memory",
              file=sys.stderr)
        return _compute(corpus, utts, cfg, progress)


def extract_features(data, config="small", *, jobs: int | None = None, repair: bool = False, verify: bool = False,
                     cache: bool | str | Path = True, progress: bool = True) -> dict:
    """Extract (or check) the feature shards of corpus ``data`` for a run config's features.

    ``config``: a shipped config name, a TOML path, a :class:`~toposcope.config.RunConfig` or a
    :class:`FeatureConfig`. ``verify`` reads every utterance once (CRC) and reports problems;
    ``repair`` recomputes bad shards. Returns ``{"folder", "utterances", "shards", "bytes", "hours",
    "seconds", "problems"}``.
    """
    import time

    from .config import RunConfig, load_config

    if isinstance(config, FeatureConfig):
        feats = config
    else:
        feats = (config if isinstance(config, RunConfig) else load_config(config)).model.features
    corpus = data if isinstance(data, Corpus) else Corpus.load(data, alignments=False)  # features need no phones
    if cache is False:
        raise ValueError("extract_features writes shards: cache=False makes no sense here")
    t0 = time.perf_counter()
    store = load_features(corpus, feats, cache=cache, progress=progress, jobs=jobs, repair=repair)
    problems = verify_store(store, progress_bar=progress_enabled(progress)) if verify else []
    return {"folder": str(store.folder), "utterances": len(store), "shards": len(store.shard_paths),
            "bytes": sum(p.stat().st_size for p in store.shard_paths), "hours": sum(u.duration for u in corpus) / 3600,
            "seconds": time.perf_counter() - t0, "problems": problems}


# -- dataset ---------------------------------------------------------------------------------------
class SpeechDataset:
    """Utterances of one split with features and grapheme targets.

    ``self[i]`` -> ``(feats (n_mels, frames), targets (n_chars,) long, utterance)``; the features are
    read from the store at that moment (a lazy store reads them from disk), so the dataset holds only
    metadata. Utterances whose normalised transcript is empty, or that give the model fewer output
    frames than CTC needs (``min_frames(targets)``), are dropped and listed in ``self.skipped`` with why.
    ``self.items``: ``(utterance id, targets, utterance)`` of the kept utterances.
    """

    def __init__(self, utterances: Sequence[Utterance], store, *, output_lengths=None):
        self.store = store
        self.items: list[tuple[str, torch.Tensor, Utterance]] = []
        self.skipped: list[tuple[str, str]] = []
        cand: list[tuple[int, Utterance, torch.Tensor, int]] = []
        skipped: list[tuple[int, str, str]] = []  # (position, id, why): reported in corpus order
        for pos, u in enumerate(utterances):
            if u.id not in store:
                raise CorpusError(f"utterance {u.id!r} has no cached features")
            text = normalize_text(u.text)
            if not text:
                skipped.append((pos, u.id, "transcript is empty after normalisation"))
                continue
            cand.append((pos, u, torch.from_numpy(np.array(encode(text), dtype=np.int64)), store.frames(u.id)))
        n_out = None
        if output_lengths is not None and cand:
            n_out = output_lengths(torch.tensor([c[3] for c in cand], dtype=torch.long)).tolist()
        self._lengths: list[int] = []
        self.ctc_need: list[int] = []  # output frames CTC needs per kept item
        for k, (pos, u, tgt, n) in enumerate(cand):
            a = tgt.numpy()
            need = len(a) + int(np.count_nonzero(a[1:] == a[:-1]))  # CTC needs a blank between repeats
            if n_out is not None and int(n_out[k]) < need:
                skipped.append((pos, u.id, f"{int(n_out[k])} output frames < {need} needed by CTC"))
                continue
            self.items.append((u.id, tgt, u))
            self._lengths.append(int(n))
            self.ctc_need.append(need)
        self.skipped = [(uid, why) for _, uid, why in sorted(skipped, key=lambda x: x[0])]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        uid, tgt, u = self.items[i]
        return self.store.get(uid), tgt, u

    @property
    def lengths(self) -> list[int]:
        """Feature frames per item (from the store's index: nothing is read)."""
        return self._lengths


@dataclass
class Batch:
    """``feats (B, n_mels, T)``, ``lengths (B,)``, ``targets (sum n_chars,)`` concatenated,
    ``target_lengths (B,)``, and the utterances."""

    feats: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    utterances: list[Utterance]

    def to(self, device) -> "Batch":
        return Batch(self.feats.to(device), self.lengths.to(device), self.targets.to(device),
                     self.target_lengths.to(device), self.utterances)


def collate(items: Sequence, pad_to: int | None = None) -> Batch:
    """Zero-pad features on the right to ``max(frames)`` (or ``pad_to`` when larger)."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    n_mels = items[0][0].shape[0]
    T = max(f.shape[1] for f, _, _ in items)
    if pad_to is not None:
        T = max(T, int(pad_to))
    feats = torch.zeros(len(items), n_mels, T)
    for i, (f, _, _) in enumerate(items):
        feats[i, :, :f.shape[1]] = f
    return Batch(feats=feats,
                 lengths=torch.tensor([f.shape[1] for f, _, _ in items], dtype=torch.long),
                 targets=torch.cat([t for _, t, _ in items]),
                 target_lengths=torch.tensor([len(t) for _, t, _ in items], dtype=torch.long),
                 utterances=[u for _, _, u in items])


# -- batches ---------------------------------------------------------------------------------------
class BucketBatchSampler:
    """Length-bucketed global batches with a deterministic per-epoch order.

    Items are sorted by length and cut into batches of at most ``batch_size`` items and (when
    ``max_frames > 0``) at most ``max_frames`` total frames, at least ``world_size`` items each.
    ``epoch_batches(epoch)`` returns the global batches (lists of item indices) in the epoch's order;
    ``local(batch)`` is this rank's share. Same ``seed`` and ``epoch`` -> same order on every rank.
    ``sorted_epochs``: the first that many epochs (0-based ``epoch < sorted_epochs``) go shortest batch first
    instead of shuffled ("SortaGrad", Amodei et al. 2016, Deep Speech 2 §3.1): CTC learns its alignments on
    short utterances before it meets long ones.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, max_frames: int = 0, shuffle: bool = True,
                 seed: int = 0, rank: int = 0, world_size: int = 1, sorted_epochs: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.lengths = list(lengths)
        self.batch_size, self.max_frames = int(batch_size), int(max_frames)
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, int(seed), rank, world_size
        if sorted_epochs < 0:
            raise ValueError(f"sorted_epochs must be >= 0, got {sorted_epochs}")
        self.sorted_epochs = int(sorted_epochs)
        if len(self.lengths) < world_size:
            raise ValueError(f"{len(self.lengths)} utterances cannot feed {world_size} processes")
        order = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], i))
        batches, cur, frames = [], [], 0
        for i in order:
            n = self.lengths[i]
            full = len(cur) >= self.batch_size or (self.max_frames > 0 and cur and frames + n > self.max_frames)
            if full and len(cur) >= world_size:
                batches.append(cur)
                cur, frames = [], 0
            cur.append(i)
            frames += n
        if cur:
            if len(cur) < world_size and batches:
                batches[-1].extend(cur)
            else:
                batches.append(cur)
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        if not self.shuffle or epoch < self.sorted_epochs:  # self.batches are in ascending length order
            return [list(b) for b in self.batches]
        g = torch.Generator().manual_seed(self.seed * 100003 + int(epoch))
        perm = torch.randperm(len(self.batches), generator=g).tolist()
        return [list(self.batches[j]) for j in perm]

    def local(self, batch: Sequence[int]) -> list[int]:
        return list(batch[self.rank::self.world_size])

    def __iter__(self) -> Iterator[list[int]]:  # epoch 0, this rank's shares
        return (self.local(b) for b in self.epoch_batches(0))


# -- loading through a DataLoader ------------------------------------------------------------------
def default_workers(n_items: int = 0) -> int:
    """``DataLoader`` worker processes: ``TOPOSCOPE_DATA_WORKERS`` when set; else 0 (read in the
    training process) for fewer than 512 items or a 1-CPU machine, and ``min(4, CPUs - 1)`` otherwise."""
    env = os.environ.get("TOPOSCOPE_DATA_WORKERS")
    if env is not None:
        try:
            return max(0, int(env))
        except ValueError:
            pass
    cpus = os.cpu_count() or 1
    if n_items < 512 or cpus < 2:
        return 0
    return min(4, cpus - 1)


def _identity(x):
    return x


@dataclass(frozen=True)
class TrainAugment:
    """An :class:`~toposcope.augment.Augmenter` and the audio file of every dataset item."""

    augmenter: object
    audio_paths: tuple


class EpochBatches(torch.utils.data.Dataset):
    """One epoch's batches as a map-style dataset: item ``k`` is this rank's share of global batch
    ``k`` (in the epoch's order), collated and padded to the longest item of the *global* batch
    (augmented items may be longer: speed perturbation).

    ``augment``: a :class:`TrainAugment`; item ``i`` at position ``p`` of global batch ``k`` is augmented
    with :func:`~toposcope.augment.item_rng` ``(seed, epoch, k, p)``, so batches do not depend on the
    number of workers or processes."""

    def __init__(self, dataset: SpeechDataset, sampler: BucketBatchSampler, epoch: int,
                 augment: TrainAugment | None = None):
        self.dataset, self.sampler, self.epoch, self.augment = dataset, sampler, int(epoch), augment
        self.batches = sampler.epoch_batches(epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def _augmented(self, i: int, k: int, pos: int):
        from .augment import item_rng

        aug = self.augment.augmenter
        uid, tgt, u = self.dataset.items[i]
        feats, _ = aug(lambda: self.dataset.store.get(uid), self.augment.audio_paths[i],
                       item_rng(aug.seed, self.epoch, k, pos), item=i)
        return feats, tgt, u

    def __getitem__(self, k: int) -> Batch:
        g = self.batches[k]
        lengths = self.dataset.lengths
        if self.augment is None:
            items = [self.dataset[i] for i in self.sampler.local(g)]
        else:
            positions = self.sampler.local(list(range(len(g))))
            items = [self._augmented(g[p], k, p) for p in positions]
        return collate(items, pad_to=max(lengths[i] for i in g))


def batch_loader(dataset: SpeechDataset, sampler: BucketBatchSampler, epoch: int, *, start: int = 0,
                 workers: int | None = None, pin_memory: bool = False,
                 augment: TrainAugment | None = None) -> Iterator[Batch]:
    """This rank's batches of ``epoch`` from global batch ``start`` on, read through a ``DataLoader``.

    Same batches, same order and same padding whatever ``workers`` is (default
    :func:`default_workers`), so resuming at ``(epoch, start)`` is exact; with ``augment`` (a
    :class:`TrainAugment`) the same holds for the augmented batches.
    """
    ds = EpochBatches(dataset, sampler, epoch, augment)
    if start >= len(ds):
        return iter(())
    w = default_workers(len(dataset)) if workers is None else int(workers)
    # Own generator: a DataLoader draws its base seed from the generator it is given, and from the
    # global torch RNG without one, which would shift dropout masks and break exact resume.
    loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=range(start, len(ds)), num_workers=w,
                                         collate_fn=_identity, pin_memory=pin_memory,
                                         prefetch_factor=2 if w > 0 else None, generator=torch.Generator())
    return iter(loader)


class _UtteranceFeatures(torch.utils.data.Dataset):
    """Item ``k`` -> the padded batch of ``chunks[k]`` (features from ``store`` or from the audio)."""

    def __init__(self, corpus, chunks, features: FeatureConfig, normalized: bool, store):
        self.corpus, self.chunks, self.features = corpus, chunks, features
        self.normalized, self.store = normalized, store

    def __len__(self) -> int:
        return len(self.chunks)

    def _one(self, u: Utterance) -> torch.Tensor:
        if self.store is not None:
            return self.store.get(u.id)
        wave = read_audio(self.corpus.audio_path(u), sample_rate=self.features.sample_rate)
        return log_mel(wave, self.features, normalized=self.normalized)

    def __getitem__(self, k: int):
        chunk = self.chunks[k]
        fs = [self._one(u) for u in chunk]
        T = max(f.shape[1] for f in fs)
        x = torch.zeros(len(fs), self.features.n_mels, T)
        for b, f in enumerate(fs):
            x[b, :, :f.shape[1]] = f
        return x, torch.tensor([f.shape[1] for f in fs], dtype=torch.long), list(chunk)


def iter_feature_batches(corpus, utterances: Sequence[Utterance], features: FeatureConfig, batch_size: int = 8,
                         *, normalized: bool = True, sort: bool = True, store=None, workers: int = 0
                         ) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[Utterance]]]:
    """Padded batches ``(feats (B, n_mels, T), lengths (B,), utterances)`` for analysis passes.

    ``sort``: length-sorted by ``(duration, id)`` (less padding), else in the given order. Features come
    from ``store`` (a :func:`load_features` result; must be normalised) or are computed from the audio
    per batch (``normalized=False``: the raw log-mel, before per-utterance normalisation). Memory holds
    one batch at a time (``workers`` > 0: a few, prefetched by ``DataLoader`` worker processes).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if store is not None and not normalized:
        raise ValueError("a feature store holds normalised features; pass store=None for normalized=False")
    order = sorted(utterances, key=lambda u: (u.duration, u.id)) if sort else list(utterances)
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    ds = _UtteranceFeatures(corpus, chunks, features, normalized, store)
    if workers <= 0:
        for k in range(len(ds)):
            yield ds[k]
        return
    yield from torch.utils.data.DataLoader(ds, batch_size=None, num_workers=int(workers), collate_fn=_identity,
                                           prefetch_factor=2, generator=torch.Generator())
