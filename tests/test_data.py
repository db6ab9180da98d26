"""Feature cache, dataset, length-bucketed batches and collate (toposcope.data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toposcope.audio import write_wav
from toposcope.corpus import Corpus, Utterance, write_manifest
from toposcope.data import BucketBatchSampler, SpeechDataset, cache_key, collate, load_features
from toposcope.features import FeatureConfig, log_mel

from helpers import tone_corpus

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tone_corpus(tmp_path_factory.mktemp("tones"), n=12)


CFG = FeatureConfig(n_fft=400, hop=160, n_mels=32)


def test_features_cached_once_and_equal_to_direct(corpus, monkeypatch):
    store = load_features(corpus, CFG, progress=False)
    cached = list((corpus.root / ".cache").glob("features-*.pt"))
    assert len(cached) == 1 and cache_key(corpus, CFG) in cached[0].name
    u = corpus[3]
    from toposcope.audio import read_audio

    direct = log_mel(read_audio(corpus.audio_path(u)), CFG)
    assert torch.equal(store.get(u.id), direct)
    # second load comes from the cache: computing is forbidden now
    import toposcope.data as data

    monkeypatch.setattr(data, "_compute", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    again = load_features(corpus, CFG, progress=False)
    assert torch.equal(again.feats, store.feats) and again.ids == store.ids


def test_cache_key_changes_with_config_and_audio(corpus, tmp_path):
    k = cache_key(corpus, CFG)
    assert cache_key(corpus, FeatureConfig(n_fft=400, hop=160, n_mels=40)) != k
    c2 = tone_corpus(tmp_path / "c2", n=12)
    import os

    p = c2.audio_path(c2[0])
    before = cache_key(c2, CFG)
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert cache_key(c2, CFG) != before


def test_corrupt_cache_is_recomputed(tmp_path):
    c = tone_corpus(tmp_path / "c", n=4, splits=("train",))
    s1 = load_features(c, CFG, progress=False)
    path = next((c.root / ".cache").glob("features-*.pt"))
    path.write_bytes(b"garbage")
    s2 = load_features(c, CFG, progress=False)
    assert torch.equal(s1.feats, s2.feats)


def test_dataset_targets_and_ctc_filter(corpus):
    store = load_features(corpus, CFG, progress=False)
    ds = SpeechDataset(corpus.split("train"), store)
    feats, tgt, u = ds[0]
    from toposcope.text import ALPHABET

    assert "".join(ALPHABET[i] for i in tgt) == u.text
    assert feats.shape[0] == 32
    # a model that keeps only 1 output frame per 100 input frames cannot emit these transcripts
    short = SpeechDataset(corpus.split("train"), store, output_lengths=lambda n: n // 100)
    assert len(short) == 0 and len(short.skipped) == len(corpus.split("train"))
    assert "needed by CTC" in short.skipped[0][1]


def test_bucket_sampler_covers_everything_once_and_sorts_by_length():
    lengths = [int(x) for x in np.random.default_rng(0).integers(50, 500, size=37)]
    s = BucketBatchSampler(lengths, batch_size=5, seed=3)
    seen = sorted(i for b in s.batches for i in b)
    assert seen == list(range(37))
    assert all(len(b) <= 5 for b in s.batches)
    # batches are contiguous in length order: max of one <= min of the next
    spans = [(min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in s.batches]
    assert all(spans[k][1] <= spans[k + 1][0] for k in range(len(spans) - 1))
    e0, e1 = s.epoch_batches(0), s.epoch_batches(1)
    assert e0 == BucketBatchSampler(lengths, batch_size=5, seed=3).epoch_batches(0)  # deterministic
    assert e0 != e1 and sorted(map(tuple, e0)) == sorted(map(tuple, e1))  # reshuffled, same batches


def test_bucket_sampler_frame_budget_and_ranks():
    lengths = [100] * 10 + [400] * 6
    s = BucketBatchSampler(lengths, batch_size=100, max_frames=800, shuffle=False)
    assert all(sum(lengths[i] for i in b) <= 800 for b in s.batches)
    assert [len(b) for b in s.batches] == [8, 3, 2, 2, 1]  # 8x100 | 2x100+400 | 2x400 | 2x400 | 400
    r0 = BucketBatchSampler(lengths, 4, seed=1, rank=0, world_size=2)
    r1 = BucketBatchSampler(lengths, 4, seed=1, rank=1, world_size=2)
    for b0, b1, g in zip(r0, r1, r0.epoch_batches(0)):
        assert sorted(b0 + b1) == sorted(g) and not set(b0) & set(b1) and len(b0) >= 1 and len(b1) >= 1
    with pytest.raises(ValueError, match="cannot feed"):
        BucketBatchSampler([10], 4, rank=0, world_size=2)


def test_collate_pads_and_reports_lengths():
    items = [(torch.ones(3, n), torch.tensor([3, 4, 5][:k]), None) for n, k in ((4, 1), (7, 3))]
    b = collate(items, pad_to=9)
    assert b.feats.shape == (2, 3, 9)
    assert b.lengths.tolist() == [4, 7] and b.target_lengths.tolist() == [1, 3]
    assert b.targets.tolist() == [3, 3, 4, 5]
    assert b.feats[0, :, 4:].abs().sum() == 0 and b.feats[1, :, :7].min() == 1
    with pytest.raises(ValueError):
        collate([])
