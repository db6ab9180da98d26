"""Feature shards, dataset, length-bucketed batches, DataLoader batches and collate (toposcope.data)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from toposcope.audio import write_wav
from toposcope.corpus import Corpus, Utterance, write_manifest
from toposcope.data import (BucketBatchSampler, FeatureStore, ShardedFeatureStore, SpeechDataset, batch_loader,
                            cache_key, collate, iter_feature_batches, load_features)
from toposcope.shards import ShardError, config_key
from toposcope.features import FeatureConfig, log_mel

from helpers import tone_corpus

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tone_corpus(tmp_path_factory.mktemp("tones"), n=12)


CFG = FeatureConfig(n_fft=400, hop=160, n_mels=32)


def test_features_cached_once_and_equal_to_direct(corpus, monkeypatch):
    store = load_features(corpus, CFG, progress=False)
    folders = list((corpus.root / ".cache").glob("features-*"))
    assert len(folders) == 1 and folders[0].name == f"features-{config_key(CFG)}"
    assert len(list(folders[0].glob("shard-*.npy"))) >= 1
    assert len(list(folders[0].glob("shard-*.index.npz"))) == len(list(folders[0].glob("shard-*.npy")))
    from toposcope.audio import read_audio

    for u in (corpus[0], corpus[3], corpus[11]):
        direct = log_mel(read_audio(corpus.audio_path(u)), CFG)
        assert torch.equal(store.get(u.id), direct)
        assert store.frames(u.id) == direct.shape[1]
    # second load comes from the shards: extracting is forbidden now
    import toposcope.shards as shards

    monkeypatch.setattr(shards, "_extract_one", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    again = load_features(corpus, CFG, progress=False)
    assert again.ids == store.ids
    for u in corpus:
        assert torch.equal(again.get(u.id), store.get(u.id))


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


def test_changed_audio_or_config_is_extracted_again(tmp_path, monkeypatch):
    c = tone_corpus(tmp_path / "c", n=6, splits=("train",))
    s1 = load_features(c, CFG, progress=False)
    import os

    import toposcope.shards as shards

    calls = []
    real = shards._extract_one
    monkeypatch.setattr(shards, "_extract_one", lambda f, r, work, cfg, threads=1: calls.append(
        [i for _, ids, _ in work for i in ids]) or real(f, r, work, cfg, threads))
    # rewrite one file with other audio: only that utterance is extracted again
    from toposcope.audio import read_audio

    p = c.audio_path(c[2])
    write_wav(p, read_audio(c.audio_path(c[4])))
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    s2 = load_features(c, CFG, progress=False)
    assert calls == [[c[2].id]]
    assert torch.equal(s2.get(c[2].id), log_mel(read_audio(p), CFG))
    assert not torch.equal(s2.get(c[2].id), s1.get(c[2].id)) or s1.frames(c[2].id) != s2.frames(c[2].id)
    # another feature config: a new folder, everything extracted
    calls.clear()
    load_features(c, FeatureConfig(n_fft=400, hop=160, n_mels=40), progress=False)
    assert sorted(i for ids in calls for i in ids) == sorted(u.id for u in c)
    assert len(list((c.root / ".cache").glob("features-*"))) == 2


def test_truncated_or_corrupt_shard_is_named_and_repaired_on_request(tmp_path):
    c = tone_corpus(tmp_path / "c", n=4, splits=("train",))
    s1 = load_features(c, CFG, progress=False)
    ref = {u.id: s1.get(u.id).clone() for u in c}
    shard = next((c.root / ".cache").glob("features-*/shard-*.npy"))
    size = shard.stat().st_size
    # truncated: found when opening, the error names the shard
    with open(shard, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(ShardError, match=re.escape(str(shard)) + ".*truncated"):
        load_features(c, CFG, progress=False)
    s2 = load_features(c, CFG, progress=False, repair=True)
    assert all(torch.equal(s2.get(u.id), ref[u.id]) for u in c)
    # flipped bytes (size unchanged): found when the utterance is read (CRC), or by repair
    shard = next((c.root / ".cache").glob("features-*/shard-*.npy"))
    with open(shard, "r+b") as f:
        f.seek(shard.stat().st_size - 64)
        f.write(b"\x7f" * 16)
    s3 = load_features(c, CFG, progress=False)
    bad = [u.id for u in c if s3.frames(u.id)]
    with pytest.raises(ShardError, match=re.escape(str(shard)) + ".*corrupt"):
        for uid in bad:
            s3.get(uid)
    s4 = load_features(c, CFG, progress=False, repair=True)
    assert not shard.exists()
    assert all(torch.equal(s4.get(u.id), ref[u.id]) for u in c)


def test_extraction_resumes_after_interruption_and_jobs_agree(tmp_path, monkeypatch):
    c = tone_corpus(tmp_path / "c", n=10, splits=("train",))
    import toposcope.shards as shards

    real, done = shards._extract_one, []

    def dies_after_two(folder, root, work, cfg, threads=1):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append([i for _, ids, _ in work for i in ids])
        return real(folder, root, work, cfg, threads)

    monkeypatch.setattr(shards, "_extract_one", dies_after_two)
    with pytest.raises(KeyboardInterrupt):  # tiny shards: one utterance each
        load_features(c, CFG, progress=False, cache=tmp_path / "cache", jobs=1, shard_mb=0.01)
    folder = next((tmp_path / "cache").glob("features-*"))
    assert len(list(folder.glob("shard-*.index.npz"))) == 2
    first = {i for ids in done for i in ids}
    assert 0 < len(first) < 10
    later = []
    monkeypatch.setattr(shards, "_extract_one", lambda f, r, work, cfg, threads=1: later.append(
        [i for _, ids, _ in work for i in ids]) or real(f, r, work, cfg, threads))
    s1 = load_features(c, CFG, progress=False, cache=tmp_path / "cache", jobs=1)
    assert {i for ids in later for i in ids} == {u.id for u in c} - first
    monkeypatch.setattr(shards, "_extract_one", real)
    s2 = load_features(c, CFG, progress=False, cache=tmp_path / "cache2", jobs=2)  # two worker processes
    assert len(list(next((tmp_path / "cache2").glob("features-*")).glob("shard-*.npy"))) >= 2
    for u in c:
        assert torch.equal(s1.get(u.id), s2.get(u.id))
    monkeypatch.setattr(shards, "MAX_OPEN", 2)  # the shards of s1 through two descriptors
    s1.close()
    for u in c:
        assert torch.equal(s1.get(u.id), s2.get(u.id)) and len(s1._fds) <= 2


def test_utterances_sharing_audio_share_one_block(tmp_path, monkeypatch):
    c = tone_corpus(tmp_path / "c", n=3, splits=("train",))
    import dataclasses

    twins = list(c) + [dataclasses.replace(u, id=u.id + "-copy") for u in c]
    write_manifest(c.root / "manifest.jsonl", twins)
    c2 = Corpus.load(c.root)
    store = load_features(c2, CFG, progress=False)
    folder = next((c.root / ".cache").glob("features-*"))
    assert sum(np.load(p, mmap_mode="r").size for p in folder.glob("shard-*.npy")) == \
        sum(store.frames(u.id) for u in c) * CFG.n_mels
    for u in c:
        assert torch.equal(store.get(u.id), store.get(u.id + "-copy"))
    # a line added later that reuses an extracted file costs no extraction
    import toposcope.shards as shards

    monkeypatch.setattr(shards, "_extract_one", lambda *a, **k: pytest.fail("extracted an already extracted file"))
    write_manifest(c.root / "manifest.jsonl", twins + [dataclasses.replace(c[1], id="late")])
    again = load_features(Corpus.load(c.root), CFG, progress=False)
    assert torch.equal(again.get("late"), store.get(c[1].id))


def test_lazy_batches_equal_in_memory_batches_bit_for_bit(corpus):
    lazy = load_features(corpus, CFG, progress=False)
    memory = load_features(corpus, CFG, progress=False, cache=False)
    assert isinstance(memory, FeatureStore) and isinstance(lazy, ShardedFeatureStore)
    utts = corpus.split("train")
    ds_m, ds_l = SpeechDataset(utts, memory), SpeechDataset(utts, lazy)
    assert ds_m.lengths == ds_l.lengths and len(ds_m) == len(ds_l) == len(utts)
    for rank in (0, 1):
        sampler = BucketBatchSampler(ds_m.lengths, 3, seed=5, rank=rank, world_size=2)
        for epoch in (0, 1):
            # today's in-memory batches, as train.py built them
            want = []
            for g in sampler.epoch_batches(epoch):
                pad_to = max(ds_m.lengths[i] for i in g)
                want.append(collate([ds_m[i] for i in sampler.local(g)], pad_to=pad_to))
            for workers, start in ((0, 0), (2, 1)):
                torch.manual_seed(11)
                got = list(batch_loader(ds_l, sampler, epoch, start=start, workers=workers))
                drawn = torch.rand(1)
                torch.manual_seed(11)
                assert torch.equal(drawn, torch.rand(1))  # the global RNG is untouched (exact resume)
                assert len(got) == len(want) - start
                for a, b in zip(want[start:], got):
                    assert torch.equal(a.feats, b.feats) and a.feats.dtype == b.feats.dtype
                    assert torch.equal(a.lengths, b.lengths) and torch.equal(a.targets, b.targets)
                    assert torch.equal(a.target_lengths, b.target_lengths)
                    assert [u.id for u in a.utterances] == [u.id for u in b.utterances]


def test_iter_feature_batches_sorted_padded_and_equal_to_direct(corpus):
    from toposcope.audio import read_audio

    utts = list(corpus)[:7]
    got = list(iter_feature_batches(corpus, utts, CFG, 3))
    assert [len(ch) for _, _, ch in got] == [3, 3, 1]
    order = [u.id for _, _, ch in got for u in ch]
    assert order == [u.id for u in sorted(utts, key=lambda u: (u.duration, u.id))]
    for x, lengths, chunk in got:
        assert x.shape[0] == len(chunk) and x.shape[2] == int(lengths.max())
        for b, u in enumerate(chunk):
            direct = log_mel(read_audio(corpus.audio_path(u)), CFG)
            assert torch.equal(x[b, :, :int(lengths[b])], direct)
            assert x[b, :, int(lengths[b]):].abs().sum() == 0
    raw = list(iter_feature_batches(corpus, utts[:2], CFG, 1, normalized=False, sort=False, workers=1))
    assert [ch[0].id for _, _, ch in raw] == [u.id for u in utts[:2]]
    assert torch.equal(raw[1][0][0], log_mel(read_audio(corpus.audio_path(utts[1])), CFG, normalized=False))
    store = load_features(corpus, CFG, progress=False)
    via_store = list(iter_feature_batches(corpus, utts, CFG, 3, store=store))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(got, via_store))
    with pytest.raises(ValueError):
        list(iter_feature_batches(corpus, utts, CFG, 3, store=store, normalized=False))


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


def test_bucket_sampler_sorted_epochs_go_shortest_first_then_shuffle():
    lengths = [300, 100, 200, 400, 150, 250, 50]
    s = BucketBatchSampler(lengths, batch_size=2, seed=3, sorted_epochs=2)
    # sorted by length: 50(6) 100(1) | 150(4) 200(2) | 250(5) 300(0) | 400(3)
    assert s.epoch_batches(0) == s.epoch_batches(1) == [[6, 1], [4, 2], [5, 0], [3]]
    plain = BucketBatchSampler(lengths, batch_size=2, seed=3)
    assert s.epoch_batches(2) == plain.epoch_batches(2) and s.epoch_batches(5) == plain.epoch_batches(5)
    assert plain.epoch_batches(0) != [[6, 1], [4, 2], [5, 0], [3]]  # this seed shuffles epoch 0
    with pytest.raises(ValueError, match="sorted_epochs"):
        BucketBatchSampler(lengths, 2, sorted_epochs=-1)


def test_collate_pads_and_reports_lengths():
    items = [(torch.ones(3, n), torch.tensor([3, 4, 5][:k]), None) for n, k in ((4, 1), (7, 3))]
    b = collate(items, pad_to=9)
    assert b.feats.shape == (2, 3, 9)
    assert b.lengths.tolist() == [4, 7] and b.target_lengths.tolist() == [1, 3]
    assert b.targets.tolist() == [3, 3, 4, 5]
    assert b.feats[0, :, 4:].abs().sum() == 0 and b.feats[1, :, :7].min() == 1
    with pytest.raises(ValueError):
        collate([])


def test_features_command_extracts_verifies_and_repairs(tmp_path, capsys):
    from toposcope.cli import main as cli_main

    c = tone_corpus(tmp_path / "c", n=6, splits=("train",))
    assert cli_main(["features", str(c.root), "--config", "tiny", "--jobs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("6 utterance(s)") and "shard(s)" in out
    shards = sorted((c.root / ".cache").glob("features-*/shard-*.npy"))
    with open(shards[0], "r+b") as f:  # flip bytes inside the data, size unchanged
        f.seek(shards[0].stat().st_size - 40)
        f.write(b"\x00\x01" * 8)
    assert cli_main(["features", str(c.root), "--config", "tiny", "--verify", "--no-progress"]) == 1
    assert f"problem: {shards[0]}" in capsys.readouterr().out
    assert cli_main(["features", str(c.root), "--config", "tiny", "--repair", "--verify", "--no-progress"]) == 0
    assert not shards[0].exists()
    assert cli_main(["features", str(c.root), "--jobs", "0"]) == 2


def test_two_processes_extracting_into_one_folder_take_turns(tmp_path):
    """Two trainings on one corpus start together: one extracts, the other waits for the folder's
    extraction lock and then reuses those shards (no duplicate blocks, no temp file lost)."""
    import subprocess
    import sys
    import textwrap

    c = tone_corpus(tmp_path / "c", n=8, splits=("train",))
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from toposcope.corpus import Corpus
        from toposcope.data import load_features
        from toposcope.features import FeatureConfig
        import toposcope.shards as shards
        real = shards._extract_one
        def slow(*a, **k):  # widen the window in which the two could collide
            time.sleep(0.5)
            return real(*a, **k)
        shards._extract_one = slow
        s = load_features(Corpus.load({str(c.root)!r}), FeatureConfig(n_fft=400, hop=160, n_mels=32),
                          progress=False, jobs=1, shard_mb=0.01)
        print(sum(s.frames(u) for u in s.ids))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    assert outs[0][0] == outs[1][0]
    folder = next((c.root / ".cache").glob("features-*"))
    ids = []
    for idx in folder.glob("shard-*.index.npz"):
        with np.load(idx) as z:
            ids += z["ids"].tolist()
    assert sorted(ids) == sorted(u.id for u in c)  # every utterance extracted exactly once
    assert not list(folder.glob(".*.tmp"))
