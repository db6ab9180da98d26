"""Log-mel features with ``torch.stft`` (no torchaudio) and frame timing (SPEC §3).

Feature frame ``j`` (``center=True``) is centred at ``j * hop / sample_rate`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["FeatureConfig", "hz_to_mel", "mel_to_hz", "mel_filterbank", "log_mel", "normalize",
           "n_frames", "EPS"]

EPS = 1e-6  # floor inside the log


@dataclass(frozen=True)
class FeatureConfig:
    """STFT / mel settings. ``paper``: 128 mels, n_fft 512, hop 128 at 16 kHz."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 128
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None  # None -> sample_rate / 2

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop <= 0 or self.n_mels <= 0:
            raise ValueError(f"feature sizes must be positive: {self}")
        if self.hop > self.n_fft:
            raise ValueError(f"hop ({self.hop}) must not exceed n_fft ({self.n_fft})")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(f"n_mels ({self.n_mels}) must not exceed n_fft // 2 + 1 ({self.n_fft // 2 + 1})")
        top = self.sample_rate / 2 if self.f_max is None else self.f_max
        if not 0 <= self.f_min < top <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={self.f_min}, f_max={top}")

    @property
    def top(self) -> float:
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)

    @property
    def frame_seconds(self) -> float:
        return self.hop / self.sample_rate


def hz_to_mel(f):
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(cfg: FeatureConfig) -> torch.Tensor:
    """Triangular HTK-mel filters, peak 1, no area normalisation: ``(n_fft // 2 + 1, n_mels)``."""
    n_freqs = cfg.n_fft // 2 + 1
    freqs = np.linspace(0.0, cfg.sample_rate / 2, n_freqs)
    pts = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.top), cfg.n_mels + 2))
    lower, centre, upper = pts[:-2], pts[1:-1], pts[2:]
    up = (freqs[:, None] - lower[None]) / (centre - lower)[None]
    down = (upper[None] - freqs[:, None]) / (upper - centre)[None]
    return torch.from_numpy(np.maximum(0.0, np.minimum(up, down))).float()


_FB_CACHE: dict[FeatureConfig, torch.Tensor] = {}


def _fb(cfg: FeatureConfig) -> torch.Tensor:
    if cfg not in _FB_CACHE:
        _FB_CACHE[cfg] = mel_filterbank(cfg)
    return _FB_CACHE[cfg]


def n_frames(n_samples: int, cfg: FeatureConfig) -> int:
    """Frames :func:`log_mel` gives for ``n_samples`` (``torch.stft(center=True)``; inputs shorter than
    ``n_fft // 2 + 1`` are zero-padded to that length first, as :func:`log_mel` does)."""
    return max(int(n_samples), cfg.n_fft // 2 + 1) // cfg.hop + 1


def log_mel(wave, cfg: FeatureConfig, *, normalized: bool = True) -> torch.Tensor:
    """``(samples,)`` or ``(batch, samples)`` waveform -> ``(n_mels, frames)`` / ``(batch, n_mels, frames)``.

    Power spectrum of a Hann-windowed STFT (reflect padding, ``center=True``), mel filterbank,
    ``log(x + 1e-6)``, then per-utterance per-bin mean/variance normalisation when ``normalized``.
    """
    x = torch.as_tensor(wave, dtype=torch.float32)
    squeeze = x.dim() == 1
    if squeeze:
        x = x[None]
    if x.shape[-1] < cfg.n_fft // 2 + 1:  # reflect padding needs this much
        x = torch.nn.functional.pad(x, (0, cfg.n_fft // 2 + 1 - x.shape[-1]))
    window = torch.hann_window(cfg.n_fft, device=x.device)
    spec = torch.stft(x, cfg.n_fft, hop_length=cfg.hop, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    power = spec.real.square() + spec.imag.square()  # (batch, freqs, frames)
    mel = torch.matmul(_fb(cfg).to(x.device).T, power)  # (batch, n_mels, frames)
    out = torch.log(mel + EPS)
    if normalized:
        out = normalize(out)
    return out[0] if squeeze else out


def normalize(feats: torch.Tensor) -> torch.Tensor:
    """Per-utterance, per-bin mean/variance normalisation over time: ``(..., n_mels, frames)``."""
    mean = feats.mean(dim=-1, keepdim=True)
    std = feats.std(dim=-1, keepdim=True, unbiased=False)
    return (feats - mean) / (std + 1e-5)
