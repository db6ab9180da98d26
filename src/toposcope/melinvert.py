"""Mel spectrogram -> audio: filterbank inversion to linear power, then Griffin-Lim (docs/method.md § Optimal inputs).

Used to listen to optimal inputs. The chain mirrors :func:`toposcope.features.log_mel` backwards::

    normalised log-mel x (n_mels, T)
      --denormalize(mean, std)-->  log-mel  L = x * std + mean          (per bin)
      --exp, minus the 1e-6 floor-->  mel power  M = max(exp(L) - EPS, 0)
      --mel_to_linear (NNLS)-->  linear power  P (n_fft//2+1, T)  with  fb^T P ~= M, P >= 0
      --sqrt, griffin_lim-->  waveform (samples,)

``mel_to_linear`` solves ``min ||fb^T p - m||  s.t. p >= 0`` per frame. ``method="mu"`` (default)
starts from the clamped pseudo-inverse and refines it with Lee-Seung multiplicative NNLS updates
(batched, fast); it stays close to the smooth minimum-norm solution, which Griffin-Lim turns into
audio whose log-mel matches the target better than the exact but spiky NNLS optimum
(``method="nnls"``, ``scipy.optimize.nnls`` per frame: exact in mel, but a handful of isolated
linear bins per frame is not a consistent STFT magnitude). ``method="pinv"`` is the clamped
pseudo-inverse alone. Measured on a 0.5 s synthetic vowel / chirp (``small`` features, 48
iterations): log-mel mean abs error 0.16 / 0.75 nats (``mu``) vs 0.33 / 1.34 (``nnls``) over bins
within 60 dB of the peak; see ``tests/test_melinvert.py`` for the asserted bounds.

``griffin_lim`` is the "fast Griffin-Lim" of Perraudin et al. (2013): alternating projections between
the target magnitude and consistent STFTs (``torch.stft`` / ``torch.istft``, Hann window,
``center=True``, the same ``n_fft`` / ``hop`` as the features) with momentum ``0.99``; ``momentum=0``
is the classic Griffin & Lim (1984). The initial phase is random from ``seed`` (deterministic).
"""

from __future__ import annotations

import numpy as np
import torch

from .features import EPS, FeatureConfig, mel_filterbank

__all__ = ["denormalize", "log_mel_to_power", "mel_to_linear", "griffin_lim", "mel_to_audio"]


def denormalize(x, mean, std) -> torch.Tensor:
    """Undo per-bin normalisation: ``(..., n_mels, T) * std[:, None] + mean[:, None]``.

    ``mean``/``std``: ``(n_mels,)`` (e.g. the training data's average per-utterance bin mean/std).
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    mean = torch.as_tensor(mean, dtype=torch.float32)
    std = torch.as_tensor(std, dtype=torch.float32)
    if mean.shape != (x.shape[-2],) or std.shape != (x.shape[-2],):
        raise ValueError(f"mean/std must have shape ({x.shape[-2]},) to match {x.shape[-2]} mel bins, "
                         f"got {tuple(mean.shape)} and {tuple(std.shape)}")
    return x * std[:, None] + mean[:, None]


def log_mel_to_power(log_mel) -> torch.Tensor:
    """``log(M + EPS)`` -> ``M`` (clamped at 0), any shape."""
    return (torch.exp(torch.as_tensor(log_mel, dtype=torch.float32)) - EPS).clamp_min(0.0)


def mel_to_linear(mel_power, cfg: FeatureConfig, *, method: str = "mu", iters: int = 200) -> torch.Tensor:
    """Mel power ``(n_mels, T)`` -> non-negative linear power ``(n_fft // 2 + 1, T)``.

    Least squares under ``p >= 0`` against the filterbank of ``cfg`` (see module docstring).
    """
    m = torch.as_tensor(mel_power, dtype=torch.float64)
    if m.dim() != 2 or m.shape[0] != cfg.n_mels:
        raise ValueError(f"mel power must be (n_mels={cfg.n_mels}, frames), got {tuple(m.shape)}")
    if bool((m < 0).any()) or not bool(torch.isfinite(m).all()):
        raise ValueError("mel power must be finite and non-negative")
    fb = mel_filterbank(cfg).double()  # (F, M)
    A = fb.T  # (M, F): m = A @ p
    if method == "nnls":
        from scipy.optimize import nnls

        An = A.numpy()
        # Scale each frame to unit max so NNLS tolerances behave the same for loud and quiet frames.
        out = np.zeros((A.shape[1], m.shape[1]))
        for t in range(m.shape[1]):
            col = m[:, t].numpy()
            s = col.max()
            if s <= 0:
                continue
            out[:, t] = nnls(An, col / s, maxiter=50 * A.shape[1])[0] * s
        return torch.from_numpy(out).float()
    p = (torch.linalg.pinv(A) @ m).clamp_min(0.0)
    if method == "pinv":
        return p.float()
    if method == "mu":
        p = p + 1e-12 * m.max().clamp_min(1e-30)  # multiplicative updates cannot leave exact zeros
        AtA_num = A.T @ m  # (F, T)
        for _ in range(int(iters)):  # Lee & Seung multiplicative update for NNLS (keeps p >= 0)
            p = p * AtA_num / (A.T @ (A @ p) + 1e-30)
        return p.float()
    raise ValueError(f"unknown method {method!r}; choose 'mu', 'nnls' or 'pinv'")


def griffin_lim(magnitude, cfg: FeatureConfig, *, n_iter: int = 48, momentum: float = 0.99,
                seed: int = 0, length: int | None = None) -> torch.Tensor:
    """STFT magnitude ``(n_fft // 2 + 1, T)`` -> waveform ``(length,)`` (default ``(T - 1) * hop``)."""
    mag = torch.as_tensor(magnitude, dtype=torch.float32)
    n_freqs = cfg.n_fft // 2 + 1
    if mag.dim() != 2 or mag.shape[0] != n_freqs:
        raise ValueError(f"magnitude must be (n_fft // 2 + 1 = {n_freqs}, frames), got {tuple(mag.shape)}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    T = mag.shape[1]
    length = (T - 1) * cfg.hop if length is None else int(length)
    window = torch.hann_window(cfg.n_fft)
    g = torch.Generator().manual_seed(int(seed))
    phase = torch.rand(mag.shape, generator=g) * (2 * torch.pi)
    spec = torch.polar(mag, phase)
    prev = torch.zeros_like(spec)

    def istft(s):
        return torch.istft(s, cfg.n_fft, hop_length=cfg.hop, window=window, center=True, length=length)

    def stft(w):
        return torch.stft(w, cfg.n_fft, hop_length=cfg.hop, window=window, center=True,
                          pad_mode="reflect", return_complex=True)[:, :T]

    for _ in range(int(n_iter)):
        rebuilt = stft(istft(spec))
        if rebuilt.shape[1] < T:  # very short signals: keep the frame count
            rebuilt = torch.nn.functional.pad(rebuilt, (0, T - rebuilt.shape[1]))
        accel = rebuilt - (momentum / (1 + momentum)) * prev if momentum else rebuilt
        prev = rebuilt
        spec = mag * torch.exp(1j * torch.angle(accel))
    return istft(spec)


def mel_to_audio(log_mel, cfg: FeatureConfig, *, mean=None, std=None, method: str = "mu",
                 n_iter: int = 48, seed: int = 0, peak: float | None = 0.9) -> torch.Tensor:
    """Log-mel ``(n_mels, T)`` -> waveform ``(samples,)``.

    If ``mean``/``std`` are given, ``log_mel`` is a *normalised* input and is de-normalised first.
    ``peak`` rescales the result to that absolute peak (``None`` keeps the reconstructed level).
    """
    L = torch.as_tensor(log_mel, dtype=torch.float32)
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std (to de-normalise) or neither")
    if mean is not None:
        L = denormalize(L, mean, std)
    power = mel_to_linear(log_mel_to_power(L), cfg, method=method)
    wave = griffin_lim(power.sqrt(), cfg, n_iter=n_iter, seed=seed)
    if peak is not None:
        top = wave.abs().max()
        if top > 0:
            wave = wave * (peak / top)
    return wave
