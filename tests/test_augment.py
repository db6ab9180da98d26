"""Augmentation (toposcope.augment): every transform against a property that can fail, determinism of
the augmented batches (same seed -> same batch, any number of workers, any start), exact resume with
augmentation on, the ``[augment]`` table."""

from __future__ import annotations

import dataclasses
import math
import os
import signal

import numpy as np
import pytest
import torch

from helpers import tone_corpus
from toposcope.augment import (AugmentConfig, Augmenter, add_noise, coloured_noise, item_rng, reverberate,
                               room_rir, snr_db, spec_augment, speed_perturb, synthetic_rir, vtlp_positions,
                               warp_mel)
from toposcope.checkpoint import dump_toml, load_checkpoint
from toposcope.config import ConfigError, config_from_dict, load_config
from toposcope.data import (BucketBatchSampler, SpeechDataset, TrainAugment, batch_loader, load_features)
from toposcope.features import FeatureConfig

SR = 16000


def sine(freq, seconds=1.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


def peak_hz(x, sr=SR):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * sr / len(x)


# -- waveform transforms ---------------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [0.9, 1.1, 1.25])
def test_speed_perturb_changes_duration_and_pitch(factor):
    x = sine(440.0, 2.0)
    y = speed_perturb(x, factor)
    assert len(y) == math.ceil(len(x) / factor)  # duration / factor
    assert peak_hz(y) == pytest.approx(440.0 * factor, abs=2.0)  # every frequency × factor
    assert speed_perturb(x, 1.0) is x


@pytest.mark.parametrize("snr", [-5.0, 0.0, 12.5, 30.0])
def test_add_noise_reaches_the_requested_snr(snr):
    rng = np.random.default_rng(0)
    x = sine(300.0) * 0.3
    noise = coloured_noise(len(x), 1.0, rng)
    y = add_noise(x, noise, snr)
    assert snr_db(x, y - x) == pytest.approx(snr, abs=1e-3)
    assert add_noise(np.zeros(100, np.float32), noise[:100], 10.0).tolist() == [0.0] * 100  # silence stays


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_coloured_noise_has_unit_rms_and_its_slope(beta):
    x = coloured_noise(2 ** 16, beta, np.random.default_rng(1))
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-5)
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.arange(len(p))
    sel = (f > 10) & (f < len(p) - 10)
    slope = np.polyfit(np.log(f[sel]), np.log(p[sel]), 1)[0]
    assert slope == pytest.approx(-beta, abs=0.1)


def _decay_time(h, sr=SR):
    """RT60 by Schroeder's backward integration, fitted from -5 to -25 dB (T20 × 3)."""
    e = np.cumsum((h[1:].astype(np.float64) ** 2)[::-1])[::-1]
    db = 10 * np.log10(e / e[0])
    i5, i25 = np.argmax(db < -5), np.argmax(db < -25)
    return 3 * (i25 - i5) / sr


@pytest.mark.parametrize("rt60", [0.2, 0.5])
def test_synthetic_rir_decays_60_db_in_rt60(rt60):
    h = synthetic_rir(rt60, SR, np.random.default_rng(2))
    assert len(h) == int(rt60 * SR) and h[0] == 1.0 and np.argmax(np.abs(h)) == 0
    assert _decay_time(h) == pytest.approx(rt60, rel=0.15)


def test_room_rir_from_pyroomacoustics():
    pytest.importorskip("pyroomacoustics")
    h = room_rir(0.4, SR, np.random.default_rng(3), max_order=10)
    assert h.dtype == np.float32 and np.abs(h).max() == pytest.approx(1.0) and len(h) > 100
    assert np.argmax(np.abs(h)) < len(h) // 4  # the direct path comes first


def test_reverberate_keeps_length_and_level():
    x = sine(200.0) * 0.5
    assert np.allclose(reverberate(x, np.array([0.0, 1.0], np.float32)), x, atol=1e-6)  # a delayed impulse: identity
    h = synthetic_rir(0.3, SR, np.random.default_rng(4))
    y = reverberate(x, h)
    assert len(y) == len(x)
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=1e-4)
    assert not np.allclose(y, x, atol=1e-3)


# -- feature transforms ----------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.8, 0.9, 1.0, 1.1, 1.3])
def test_vtlp_warp_is_monotone_and_keeps_the_ends(alpha):
    pos = vtlp_positions(64, alpha)
    assert pos[0] == 0.0 and pos[-1] == pytest.approx(63.0)
    assert np.all(np.diff(pos) > 0)  # the mel axis stays monotone
    if alpha == 1.0:
        assert np.allclose(pos, np.arange(64))


def test_warp_mel_moves_a_formant_by_alpha():
    f = torch.zeros(64, 5)
    f[20] = 1.0  # a "formant" at bin 20, below the warp's boundary
    assert torch.equal(warp_mel(f, 1.0), f)
    for alpha in (0.9, 1.1):
        w = warp_mel(f, alpha)
        centre = float((torch.arange(64.0) * w[:, 0]).sum() / w[:, 0].sum())
        assert centre == pytest.approx(20 * alpha, abs=0.05)


def test_spec_augment_masks_counts_and_widths():
    f = torch.randn(64, 300) + 5.0  # no zeros of its own
    out, masks = spec_augment(f, np.random.default_rng(5), time_masks=3, time_mask_frames=20, max_time_ratio=0.1,
                              freq_masks=2, freq_mask_bins=8)
    assert [m[0] for m in masks] == ["time"] * 3 + ["freq"] * 2
    cap = min(20, int(0.1 * 300 / 3))  # 10 frames
    zero = torch.zeros_like(f, dtype=torch.bool)
    for kind, s, w in masks:
        assert 0 <= w <= (cap if kind == "time" else 8) and s >= 0
        if kind == "time":
            assert s + w <= 300
            zero[:, s:s + w] = True
        else:
            assert s + w <= 64
            zero[s:s + w, :] = True
    assert torch.equal(out == 0, zero)  # exactly the masked cells, nothing else
    assert torch.equal(out[~zero], f[~zero])
    assert (f != 0).all()  # the input is untouched


def test_spec_augment_total_time_masked_at_most_the_ratio():
    for seed in range(50):
        f = torch.ones(8, 97)
        out, masks = spec_augment(f, np.random.default_rng(seed), time_masks=2, time_mask_frames=50,
                                  max_time_ratio=0.2, freq_masks=0, freq_mask_bins=0)
        assert sum(w for _, _, w in masks) <= 0.2 * 97


# -- the pipeline ----------------------------------------------------------------------------------------
FEATS = FeatureConfig(hop=160, n_mels=32)


def test_item_rng_depends_on_every_coordinate():
    a = item_rng(0, 1, 2, 3).random(4)
    assert np.array_equal(a, item_rng(0, 1, 2, 3).random(4))
    for other in [(1, 1, 2, 3), (0, 2, 2, 3), (0, 1, 3, 3), (0, 1, 2, 4)]:
        assert not np.array_equal(a, item_rng(*other).random(4))


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    import soundfile as sf

    p = tmp_path_factory.mktemp("aug") / "a.wav"
    x = np.concatenate([sine(200.0, 0.5), sine(800.0, 0.5)]) * 0.5
    sf.write(p, x, SR)
    return p


def test_augmenter_same_rng_same_features_and_draws_follow_the_config(wav):
    cfg = AugmentConfig(enabled=True, rir_engine="synthetic", rir_bank=3, noise_prob=1.0, reverb_prob=1.0,
                        speeds=(1.1,), vtlp_prob=1.0)
    aug = Augmenter(cfg, FEATS, seed=7)
    a, da = aug(None, wav, item_rng(7, 0, 0, 0))
    b, db = aug(None, wav, item_rng(7, 0, 0, 0))
    assert torch.equal(a, b) and da == db
    assert da.speed == 1.1 and da.reverb in (0, 1, 2) and 10 <= da.snr <= 30 and 0.9 <= da.vtlp <= 1.1
    assert da.noise.startswith("beta=")
    # 1 s at speed 1.1 -> ceil(16000 / 1.1) samples -> frames
    assert a.shape == (32, math.ceil(SR / 1.1) // 160 + 1)
    c, _ = aug(None, wav, item_rng(7, 0, 0, 1))
    assert not torch.equal(a, c)


def test_augmenter_uses_cached_features_when_no_waveform_transform(wav):
    cfg = AugmentConfig(enabled=True, speeds=(1.0,), noise_prob=0.0, reverb_prob=0.0, vtlp_prob=0.0,
                        time_masks=0, freq_masks=0)
    aug = Augmenter(cfg, FEATS)
    cached = torch.randn(32, 50)
    out, d = aug(lambda: cached, wav, item_rng(0, 0, 0, 0))
    assert torch.equal(out, cached) and out is not cached  # a copy: the store's tensor is never written
    assert not cfg.waveform


def test_augmenter_respects_max_speed(wav):
    cfg = AugmentConfig(enabled=True, speeds=(0.9, 1.1), reverb_prob=0.0, noise_prob=0.0)
    aug = Augmenter(cfg, FEATS, max_speed=[1.0])
    assert {aug.draw(item_rng(0, 0, k, 0), item=0).speed for k in range(40)} == {0.9}


def test_augmenter_noise_folder(wav, tmp_path):
    (tmp_path / "noise").mkdir()
    import shutil

    shutil.copy(wav, tmp_path / "noise" / "n.wav")
    cfg = AugmentConfig(enabled=True, noise_prob=1.0, noise_file_prob=1.0, reverb_prob=0.0, noise_dir=str(tmp_path / "noise"))
    aug = Augmenter(cfg, FEATS)
    d = aug.draw(item_rng(0, 0, 0, 0))
    assert d.noise == str(tmp_path / "noise" / "n.wav")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no"):
        Augmenter(dataclasses.replace(cfg, noise_dir=str(tmp_path / "empty")), FEATS)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        Augmenter(dataclasses.replace(cfg, noise_dir=str(tmp_path / "missing")), FEATS)


# -- batches: same seed, any workers, any start -------------------------------------------------------------
@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return tone_corpus(tmp_path_factory.mktemp("tones_aug"), n=16)


def _augmented_epoch(corpus, workers, start=0, seed=3, world=1, rank=0):
    cfg = AugmentConfig(enabled=True, rir_engine="synthetic", rir_bank=2)
    feats = FEATS
    store = load_features(corpus, feats, progress=False)
    ds = SpeechDataset(corpus.split("train"), store)
    sampler = BucketBatchSampler(ds.lengths, 4, seed=seed, rank=rank, world_size=world)
    aug = TrainAugment(Augmenter(cfg, feats, seed=seed), tuple(str(corpus.audio_path(u)) for _, _, u in ds.items))
    return list(batch_loader(ds, sampler, 1, start=start, workers=workers, augment=aug))


def test_augmented_batches_same_for_any_workers_and_start(tones):
    a = _augmented_epoch(tones, 0)
    b = _augmented_epoch(tones, 1)
    c = _augmented_epoch(tones, 0, start=2)
    assert len(a) == len(b) == len(c) + 2
    for x, y in zip(a, b):
        assert torch.equal(x.feats, y.feats) and torch.equal(x.lengths, y.lengths)
    for x, y in zip(a[2:], c):
        assert torch.equal(x.feats, y.feats)
    d = _augmented_epoch(tones, 0, seed=4)
    assert not all(torch.equal(x.feats, y.feats) for x, y in zip(a, d) if x.feats.shape == y.feats.shape)


def test_augmented_ranks_split_the_global_batch(tones):
    """Under DDP every rank augments its share with the rng of the item's position in the global batch."""
    one = _augmented_epoch(tones, 0)
    r0, r1 = _augmented_epoch(tones, 0, world=2, rank=0), _augmented_epoch(tones, 0, world=2, rank=1)
    for g, a, b in zip(one, r0, r1):
        for i in range(len(g.utterances)):
            part, j = (a, i // 2) if i % 2 == 0 else (b, i // 2)
            n = int(g.lengths[i])
            assert part.utterances[j].id == g.utterances[i].id
            assert torch.equal(part.feats[j, :, :n], g.feats[i, :, :n])


# -- training with augmentation -------------------------------------------------------------------------
def _tiny_aug(**train_kw):
    cfg = load_config("tiny")
    t = dataclasses.replace(cfg.train, batch_size=4, warmup_steps=2, log_every=1, **train_kw)
    a = AugmentConfig(enabled=True, rir_engine="synthetic", rir_bank=2)
    return dataclasses.replace(cfg, train=t, augment=a)


def test_resume_with_augmentation_is_exact(tones, tmp_path):
    from toposcope.train import train

    cfg = _tiny_aug(max_steps=7)
    straight = train(tones.root, tmp_path / "a", config=cfg, progress=False)
    assert straight["step"] == 7

    def ctrl_c_at_4(info):
        if info["step"] == 4:
            os.kill(os.getpid(), signal.SIGINT)

    part = train(tones.root, tmp_path / "b", config=cfg, progress=False, callback=ctrl_c_at_4)
    assert part["stopped"] == "interrupted"
    train(tones.root, tmp_path / "b", config=None, resume=True, progress=False)
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and augmentation changed the training: without it the weights differ
    train(tones.root, tmp_path / "c", config=cfg, augment=False, progress=False)
    c = load_checkpoint(tmp_path / "c" / "checkpoints" / "last.pt")["model"]
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_resume_refuses_a_changed_augment_table(tones, tmp_path):
    from toposcope.train import train

    cfg = _tiny_aug(max_steps=2)
    train(tones.root, tmp_path / "r", config=cfg, progress=False)
    with pytest.raises(ConfigError, match="augment"):
        train(tones.root, tmp_path / "r", config=cfg, augment=False, resume=True, max_steps=3, progress=False)


# -- config ----------------------------------------------------------------------------------------------
def test_augment_table_round_trips_and_defaults_off():
    import tomllib

    small = load_config("small")  # VTLP only (docs/benchmarks/training.md § Recipe sweep, round 2)
    a = small.augment
    assert a.enabled and a.speeds == (1.0,) and a.vtlp_prob == 0.8 and a.vtlp == (0.85, 1.15)
    assert a.noise_prob == a.reverb_prob == a.time_masks == a.freq_masks == 0
    assert not a.waveform  # a warp of the cached features: no audio is read while training
    assert not load_config("tiny").augment.enabled  # absent table: off
    on = dataclasses.replace(small, augment=AugmentConfig(enabled=True, speeds=(0.95, 1.05), noise_dir="/x",
                                                          snr_db=(0, 12.5)))
    for cfg in (small, on):
        assert config_from_dict(tomllib.loads(dump_toml(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("table, msg", [
    ({"speeds": []}, "speeds"), ({"speeds": [3.0]}, "speeds"), ({"snr_db": [30, 10]}, "snr_db"),
    ({"noise_prob": 1.5}, "noise_prob"), ({"rir_engine": "magic"}, "rir_engine"), ({"time_masks": -1}, "time_masks"),
    ({"enabled": "yes"}, "enabled"), ({"vtlp": [0.9]}, "vtlp"), ({"bogus": 1}, "unknown key"),
    ({"rt60": [0.2, float("nan")]}, "rt60"),
])
def test_bad_augment_tables_are_config_errors(table, msg):
    d = load_config("tiny").to_dict()
    d["augment"] = table
    with pytest.raises(ConfigError, match=msg) as e:
        config_from_dict(d, "x.toml")
    assert "[augment]" in str(e.value)
    d["augment"] = 3
    with pytest.raises(ConfigError, match="must be a table"):
        config_from_dict(d, "x.toml")
