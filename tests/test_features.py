"""Log-mel features (docs/method.md § Features and model) against an independent numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toposcope.features import EPS, FeatureConfig, hz_to_mel, log_mel, mel_filterbank, mel_to_hz, n_frames


def ref_filterbank(sr, n_fft, n_mels, fmin, fmax):
    """HTK-mel triangles written out filter by filter, bin by bin."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    imel = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = [imel(mel(fmin) + (mel(fmax) - mel(fmin)) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    fb = np.zeros((n_fft // 2 + 1, n_mels))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        for k in range(n_fft // 2 + 1):
            f = k * sr / n_fft
            if lo <= f <= c:
                fb[k, m] = (f - lo) / (c - lo)
            elif c < f <= hi:
                fb[k, m] = (hi - f) / (hi - c)
    return fb


def ref_log_mel(x, sr, n_fft, hop, fb):
    """Periodic Hann window, reflect padding by n_fft/2, |rfft|^2, mel, log(+1e-6)."""
    x = np.asarray(x, dtype=np.float64)
    xp = np.pad(x, n_fft // 2, mode="reflect")
    n = np.arange(n_fft)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    frames = [xp[j * hop:j * hop + n_fft] * win for j in range(1 + (len(xp) - n_fft) // hop)]
    power = np.abs(np.fft.rfft(np.stack(frames), axis=1)) ** 2  # (frames, freqs)
    return np.log(power @ fb + 1e-6).T


def test_mel_scale_round_trip_and_known_values():
    assert hz_to_mel(700.0) == pytest.approx(2595.0 * np.log10(2.0))
    assert hz_to_mel(1000.0) == pytest.approx(999.985, abs=1e-3)
    f = np.array([0.0, 100.0, 1234.5, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, atol=1e-9)


@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", [
    (16000, 512, 128, 0.0, None), (16000, 256, 40, 20.0, 7600.0), (8000, 64, 10, 0.0, None)])
def test_mel_filterbank_matches_reference(sr, n_fft, n_mels, fmin, fmax):
    cfg = FeatureConfig(sample_rate=sr, n_fft=n_fft, n_mels=n_mels, hop=n_fft // 4, f_min=fmin, f_max=fmax)
    fb = mel_filterbank(cfg).numpy()
    ref = ref_filterbank(sr, n_fft, n_mels, fmin, fmax if fmax is not None else sr / 2)
    assert fb.shape == (n_fft // 2 + 1, n_mels)
    np.testing.assert_allclose(fb, ref, atol=1e-6)
    assert fb.max() <= 1.0 + 1e-6 and fb.min() >= 0.0


def test_tiny_filterbank_by_hand():
    # sr 8, n_fft 8: bins at 0,1,2,3,4 Hz. Use f_max 4 with mel spacing: compute edges explicitly.
    cfg = FeatureConfig(sample_rate=8, n_fft=8, hop=2, n_mels=1)
    e = mel_to_hz(np.linspace(0, hz_to_mel(4.0), 3))  # lower 0, centre ~2.0, upper 4
    fb = mel_filterbank(cfg).numpy()[:, 0]
    assert 1.99 < e[1] < 2.0  # the centre falls just below the 2 Hz bin: bin 2 is on the falling edge
    expect = [0.0, 1 / e[1], (4 - 2) / (4 - e[1]), (4 - 3) / (4 - e[1]), 0.0]
    np.testing.assert_allclose(fb, expect, atol=1e-6)


@pytest.mark.parametrize("n_fft, hop, n_mels", [(512, 128, 128), (400, 160, 40)])
def test_log_mel_matches_numpy_reference(n_fft, hop, n_mels):
    cfg = FeatureConfig(n_fft=n_fft, hop=hop, n_mels=n_mels)
    rng = np.random.default_rng(1)
    t = np.arange(4000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    got = log_mel(x, cfg, normalized=False).numpy()
    ref = ref_log_mel(x, 16000, n_fft, hop, ref_filterbank(16000, n_fft, n_mels, 0.0, 8000.0))
    assert got.shape == ref.shape == (n_mels, n_frames(len(x), cfg))
    np.testing.assert_allclose(got, ref, atol=2e-3, rtol=1e-4)
    # batched input gives the same per row
    both = log_mel(np.stack([x, x[::-1].copy()]), cfg, normalized=False).numpy()
    np.testing.assert_allclose(both[0], got, atol=1e-5)


def test_log_mel_tone_peaks_in_its_band_and_normalisation():
    cfg = FeatureConfig()
    t = np.arange(16000) / 16000
    feats = log_mel(np.sin(2 * np.pi * 1000 * t).astype(np.float32), cfg, normalized=False)
    peak = int(feats[:, 20:-20].mean(dim=1).argmax())
    fb = mel_filterbank(cfg).numpy()
    assert fb[1000 * 512 // 16000, peak] > 0.5  # the 1 kHz bin is well inside the winning filter
    norm = log_mel(np.sin(2 * np.pi * 1000 * t).astype(np.float32) + 0.01, cfg)
    np.testing.assert_allclose(norm.mean(dim=1).numpy(), 0.0, atol=1e-4)
    # 128 mels on 257 bins: the lowest triangle (0-28 Hz) holds no FFT bin except 0 Hz, where it is 0,
    # so that channel is constant (log EPS) and normalises to 0; every other channel to unit std.
    empty = fb.sum(axis=0) == 0
    assert empty.tolist() == [True] + [False] * 127
    std = norm.std(dim=1, unbiased=False)
    assert torch.all((std[1:] - 1).abs() < 1e-2) and float(norm[0].abs().max()) == 0.0
    silent = log_mel(np.zeros(2000, np.float32), cfg, normalized=False)
    assert torch.allclose(silent, torch.full_like(silent, float(np.log(EPS))))


@pytest.mark.parametrize("n", [1, 100, 256, 257, 300, 512, 1000, 16001])
def test_n_frames_matches_log_mel(n):
    cfg = FeatureConfig()
    assert log_mel(np.zeros(n, np.float32), cfg, normalized=False).shape == (cfg.n_mels, n_frames(n, cfg))


def test_feature_config_errors():
    with pytest.raises(ValueError, match="hop"):
        FeatureConfig(hop=1024, n_fft=512)
    with pytest.raises(ValueError, match="n_mels"):
        FeatureConfig(n_fft=64, hop=16, n_mels=40)
    with pytest.raises(ValueError, match="f_min"):
        FeatureConfig(f_min=9000.0)
    assert FeatureConfig().frame_seconds == 128 / 16000
