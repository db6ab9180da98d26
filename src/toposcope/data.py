"""Features once, then batches: feature cache, dataset, length-bucketed batches, padded collate.

* :func:`load_features` computes the log-mel of every utterance of a corpus once per
  :class:`FeatureConfig` and caches them in ``<corpus>/.cache/features-<hash>.pt`` (one float32
  tensor of all frames + lengths; the hash covers the feature config and each utterance's id, audio
  path, size and mtime, so edits invalidate it). Reloading is a single ``torch.load``.
* :class:`SpeechDataset` pairs features with encoded transcripts.
* :class:`BucketBatchSampler` sorts by length and cuts *global* batches (by count and/or total
  seconds); each epoch shuffles the batch order with a generator seeded by ``(seed, epoch)`` (no
  hidden RNG state, so resuming at ``(epoch, batch)`` is exact). Under DDP every rank sees the same
  global batches and takes the slice ``batch[rank::world_size]``.
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

import torch

from ._util import progress_enabled
from .audio import read_audio
from .corpus import Corpus, CorpusError, Utterance
from .features import FeatureConfig, log_mel
from .text import encode, normalize_text

__all__ = ["FeatureStore", "load_features", "SpeechDataset", "Batch", "BucketBatchSampler", "collate",
           "cache_key", "progress_enabled"]


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


def load_features(corpus: Corpus, cfg: FeatureConfig, *, cache: bool | str | Path = True,
                  progress: bool = True) -> FeatureStore:
    """Features of all utterances of ``corpus``, computed once and cached.

    ``cache=True`` uses ``<corpus>/.cache/``; a path uses that directory; ``False`` computes without
    caching. An unwritable cache directory only costs the caching (a note on stderr).
    """
    utts = list(corpus)
    if cache is False:
        return _compute(corpus, utts, cfg, progress)
    cache_dir = Path(corpus.root) / ".cache" if cache is True else Path(cache)
    path = cache_dir / f"features-{cache_key(corpus, cfg)}.pt"
    if path.is_file():
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            store = FeatureStore(list(d["ids"]), d["feats"], d["lengths"], d["offsets"])
            if store.ids == [u.id for u in utts] and store.feats.shape[0] == cfg.n_mels:
                return store
        except Exception as e:  # a corrupt cache is recomputed, never trusted
            print(f"toposcope: ignoring unreadable feature cache {path} ({e})", file=sys.stderr)
    store = _compute(corpus, utts, cfg, progress)
    try:
        from .checkpoint import save_checkpoint

        save_checkpoint(path, {"ids": store.ids, "feats": store.feats, "lengths": store.lengths,
                               "offsets": store.offsets, "feature_config": asdict(cfg)})
    except OSError as e:
        print(f"toposcope: could not write feature cache {path} ({e}); continuing without it", file=sys.stderr)
    return store


# -- dataset ---------------------------------------------------------------------------------------
class SpeechDataset:
    """Utterances of one split with features and grapheme targets.

    ``self[i]`` -> ``(feats (n_mels, frames), targets (n_chars,) long, utterance)``.
    Utterances whose normalised transcript is empty, or that give the model fewer output frames
    than CTC needs (``min_frames(targets)``), are dropped and listed in ``self.skipped`` with why.
    """

    def __init__(self, utterances: Sequence[Utterance], store: FeatureStore, *, output_lengths=None):
        self.items: list[tuple[torch.Tensor, torch.Tensor, Utterance]] = []
        self.skipped: list[tuple[str, str]] = []
        for u in utterances:
            if u.id not in store:
                raise CorpusError(f"utterance {u.id!r} has no cached features")
            text = normalize_text(u.text)
            if not text:
                self.skipped.append((u.id, "transcript is empty after normalisation"))
                continue
            feats = store.get(u.id)
            tgt = torch.tensor(encode(text), dtype=torch.long)
            if output_lengths is not None:
                n_out = int(output_lengths(torch.tensor([feats.shape[1]]))[0])
                need = len(tgt) + int((tgt[1:] == tgt[:-1]).sum())
                if n_out < need:
                    self.skipped.append((u.id, f"{n_out} output frames < {need} needed by CTC"))
                    continue
            self.items.append((feats, tgt, u))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]

    @property
    def lengths(self) -> list[int]:
        """Feature frames per item."""
        return [f.shape[1] for f, _, _ in self.items]


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
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, max_frames: int = 0, shuffle: bool = True,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.lengths = list(lengths)
        self.batch_size, self.max_frames = int(batch_size), int(max_frames)
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, int(seed), rank, world_size
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
        if not self.shuffle:
            return [list(b) for b in self.batches]
        g = torch.Generator().manual_seed(self.seed * 100003 + int(epoch))
        perm = torch.randperm(len(self.batches), generator=g).tolist()
        return [list(self.batches[j]) for j in perm]

    def local(self, batch: Sequence[int]) -> list[int]:
        return list(batch[self.rank::self.world_size])

    def __iter__(self) -> Iterator[list[int]]:  # epoch 0, this rank's shares
        return (self.local(b) for b in self.epoch_batches(0))
