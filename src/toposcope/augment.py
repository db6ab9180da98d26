"""Training-time augmentation: speed, noise, reverberation, VTLP and SpecAugment (docs/method.md § Augmentation).

One utterance goes through two stages, each transform a small function of its own:

1. **waveform** (only when a waveform transform is drawn for the utterance; otherwise its cached
   features are used as they are): read the audio, :func:`speed_perturb` (resampling: tempo *and*
   pitch change, as Kaldi's ``sox speed``), :func:`reverberate` with a room impulse response (image
   method of ``pyroomacoustics`` when installed, else :func:`synthetic_rir`, exponentially decaying
   noise), :func:`add_noise` at a drawn SNR (generated :func:`coloured_noise`, or a crop of a file
   from ``noise_dir``), then the usual normalised log-mel (:func:`toposcope.features.log_mel`);
2. **features** ``(n_mels, frames)``, normalised: :func:`warp_mel` (vocal-tract-length perturbation as
   a piecewise-linear warp of the mel axis, Jaitly & Hinton 2013) and :func:`spec_augment` (time and
   frequency masks set to 0, the per-bin mean after normalisation; Park et al. 2019).

Deterministic: every draw comes from one ``numpy`` generator seeded by ``(seed, epoch, global batch
index in the epoch, position in the global batch)`` (:func:`item_rng`), so the same seed gives the same
augmented batch whatever the number of loader workers or processes, and a resumed run sees exactly the
batches an uninterrupted one would. Nothing touches the global RNGs.

Deviation from the papers: VTLP warps the *normalised* log-mel (the same for cached and recomputed
features), not the filterbank's centre frequencies; SpecAugment's time warping is left out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

__all__ = ["AugmentConfig", "Augmenter", "item_rng", "speed_perturb", "coloured_noise", "add_noise", "snr_db",
           "synthetic_rir", "room_rir", "reverberate", "vtlp_positions", "warp_mel", "spec_augment",
           "rir_engine"]

_NOISE_SUFFIXES = (".wav", ".flac", ".ogg")


def _pair(v, name: str, lo: float = -math.inf, hi: float = math.inf) -> tuple[float, float]:
    from .config import ConfigError

    try:
        a, b = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be [low, high], got {v!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and lo <= a <= b <= hi):
        raise ConfigError(f"{name} must be [low, high] with {lo:g} <= low <= high <= {hi:g}, got {v!r}")
    return a, b


@dataclass(frozen=True)
class AugmentConfig:
    """The ``[augment]`` table. ``enabled = false`` (the default when the table is absent) turns it all off.

    ``speeds``: factors drawn uniformly per utterance (1.0 = none); ``noise_prob``/``snr_db``: additive
    noise and its SNR range in dB; ``noise_dir``: a folder of noise recordings (WAV/FLAC/OGG, searched
    recursively), used for ``noise_file_prob`` of the noisy utterances, generated coloured noise
    otherwise; ``reverb_prob``/``rt60``: reverberation and its RT60 range in seconds, from a bank of
    ``rir_bank`` impulse responses (``rir_engine``: ``auto``, ``pyroomacoustics`` or ``synthetic``);
    ``vtlp_prob``/``vtlp``: warp factor range; ``time_masks`` masks of up to ``time_mask_frames``
    frames, at most ``max_time_ratio`` of the utterance in all; ``freq_masks`` of up to
    ``freq_mask_bins`` mel bins.
    """

    enabled: bool = False
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)
    noise_prob: float = 0.4
    snr_db: tuple[float, float] = (10.0, 30.0)
    noise_dir: str = ""
    noise_file_prob: float = 0.5
    reverb_prob: float = 0.3
    rt60: tuple[float, float] = (0.2, 0.7)
    rir_bank: int = 16
    rir_engine: str = "auto"
    vtlp_prob: float = 0.5
    vtlp: tuple[float, float] = (0.9, 1.1)
    time_masks: int = 2
    time_mask_frames: int = 20
    max_time_ratio: float = 0.2
    freq_masks: int = 2
    freq_mask_bins: int = 8

    def __post_init__(self) -> None:
        from .config import ConfigError

        if not isinstance(self.enabled, bool):
            raise ConfigError(f"enabled must be true or false, got {self.enabled!r}")
        try:
            speeds = tuple(float(s) for s in self.speeds)
        except (TypeError, ValueError):
            raise ConfigError(f"speeds must be a list of numbers, got {self.speeds!r}") from None
        if not speeds or not all(math.isfinite(s) and 0.5 <= s <= 2.0 for s in speeds):
            raise ConfigError(f"speeds must be a non-empty list of factors in [0.5, 2], got {self.speeds!r}")
        object.__setattr__(self, "speeds", speeds)
        object.__setattr__(self, "snr_db", _pair(self.snr_db, "snr_db", -20, 100))
        object.__setattr__(self, "rt60", _pair(self.rt60, "rt60", 0.05, 3.0))
        object.__setattr__(self, "vtlp", _pair(self.vtlp, "vtlp", 0.5, 2.0))
        for n in ("noise_prob", "noise_file_prob", "reverb_prob", "vtlp_prob", "max_time_ratio"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ConfigError(f"{n} must be a number in [0, 1], got {v!r}")
            object.__setattr__(self, n, float(v))
        for n in ("time_masks", "time_mask_frames", "freq_masks", "freq_mask_bins", "rir_bank"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"{n} must be an integer >= 0, got {v!r}")
        if self.rir_bank < 1:
            raise ConfigError(f"rir_bank must be >= 1, got {self.rir_bank}")
        if self.rir_engine not in ("auto", "pyroomacoustics", "synthetic"):
            raise ConfigError(f"rir_engine must be 'auto', 'pyroomacoustics' or 'synthetic', got {self.rir_engine!r}")
        if not isinstance(self.noise_dir, str):
            raise ConfigError(f"noise_dir must be a folder path (a string), got {self.noise_dir!r}")

    @property
    def waveform(self) -> bool:
        """Can any utterance need its audio (speed, noise or reverberation)?"""
        return self.enabled and (any(s != 1.0 for s in self.speeds) or self.noise_prob > 0 or self.reverb_prob > 0)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


# -- randomness ----------------------------------------------------------------------------------------
def item_rng(seed: int, epoch: int, batch: int, position: int) -> np.random.Generator:
    """The generator of one training item: a function of where it sits, nothing else."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(batch), int(position), 0xA06])


# -- waveform transforms (1-D float arrays at one sample rate) -------------------------------------------
def speed_perturb(wave: np.ndarray, factor: float) -> np.ndarray:
    """Play ``wave`` ``factor`` times faster by resampling: ``len / factor`` samples (rounded), every
    frequency times ``factor``. ``factor`` is approximated by a fraction with denominator ≤ 100."""
    if factor == 1.0:
        return wave
    from scipy.signal import resample_poly

    fr = Fraction(float(factor)).limit_denominator(100)
    # resample_poly(x, up, down) has ceil(len * up / down) samples: up/down = 1/factor
    return resample_poly(np.asarray(wave, dtype=np.float64), fr.denominator, fr.numerator).astype(np.float32)


def coloured_noise(n: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of noise with power spectrum ∝ ``1 / f**beta`` (0 white, 1 pink, 2 brown), unit RMS
    (shaped in the frequency domain at the next fast FFT length, then cut to ``n``)."""
    from scipy.fft import irfft, next_fast_len

    m = next_fast_len(max(int(n), 2), real=True)
    spec = rng.standard_normal(m // 2 + 1) + 1j * rng.standard_normal(m // 2 + 1)
    f = np.arange(m // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (-beta / 2.0)
    spec[0] = 0.0
    x = irfft(spec, m)[:n]
    x = x - x.mean()
    rms = np.sqrt(np.mean(x ** 2))
    return (x / rms if rms > 0 else x).astype(np.float32)


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """``10 log10(P_signal / P_noise)`` with mean-square powers."""
    return float(10.0 * np.log10(np.mean(np.square(signal, dtype=np.float64)) /
                                 np.mean(np.square(noise, dtype=np.float64))))


def add_noise(wave: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """``wave + g * noise`` with ``g`` chosen so that the SNR is ``snr`` dB (``noise`` as long as
    ``wave``). A silent ``wave`` or ``noise`` is returned unchanged."""
    ps = np.mean(np.square(wave, dtype=np.float64))
    pn = np.mean(np.square(noise, dtype=np.float64))
    if ps <= 0 or pn <= 0:
        return wave
    g = math.sqrt(ps / (pn * 10.0 ** (snr / 10.0)))
    return (wave + g * noise).astype(np.float32)


def synthetic_rir(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Exponentially decaying Gaussian noise whose energy falls 60 dB in ``rt60`` seconds, with a unit
    direct path at sample 0; length ``rt60`` seconds."""
    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    h = rng.standard_normal(n) * np.exp(-3.0 * math.log(10.0) * t / rt60)  # amplitude: -60 dB at rt60
    h[0] = 0.0
    h *= 0.3 / max(np.sqrt(np.sum(h ** 2)), 1e-12)  # reverberant energy below the direct sound
    h[0] = 1.0
    return h.astype(np.float32)


def room_rir(rt60: float, sample_rate: int, rng: np.random.Generator, max_order: int = 30) -> np.ndarray:
    """An impulse response of a random shoebox room (3–10 × 3–8 × 2.4–4 m) with the wall absorption
    Sabine's formula gives for ``rt60``, source and microphone ≥ 0.5 m from the walls, by the image
    method of ``pyroomacoustics`` (reflection order capped at ``max_order`` to bound the cost)."""
    import pyroomacoustics as pra

    dim = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
    e_abs, order = pra.inverse_sabine(rt60, dim)
    room = pra.ShoeBox(dim, fs=sample_rate, materials=pra.Material(e_abs), max_order=min(int(order), max_order))
    room.add_source(rng.uniform(0.5, dim - 0.5))
    room.add_microphone(rng.uniform(0.5, dim - 0.5))
    room.compute_rir()
    h = np.asarray(room.rir[0][0], dtype=np.float64)
    return (h / max(np.abs(h).max(), 1e-12)).astype(np.float32)


def rir_engine(wanted: str = "auto") -> str:
    """``pyroomacoustics`` when wanted (or ``auto``) and importable, else ``synthetic``."""
    if wanted == "synthetic":
        return "synthetic"
    try:
        import pyroomacoustics  # noqa: F401
        return "pyroomacoustics"
    except ImportError:
        if wanted == "pyroomacoustics":
            raise ImportError("rir_engine = 'pyroomacoustics' but it is not installed "
                              "(pip install pyroomacoustics, or rir_engine = 'auto')") from None
        return "synthetic"


def reverberate(wave: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``wave`` convolved with ``rir``, cut to ``len(wave)`` (aligned at the strongest tap, the direct
    path) and rescaled to the original RMS."""
    from scipy.signal import oaconvolve

    d = int(np.argmax(np.abs(rir)))
    y = oaconvolve(np.asarray(wave, dtype=np.float32), rir)[d:d + len(wave)]
    r0, r1 = np.sqrt(np.mean(np.square(wave, dtype=np.float64))), np.sqrt(np.mean(np.square(y, dtype=np.float64)))
    return (y * (r0 / r1) if r1 > 0 else y).astype(np.float32)


# -- feature transforms ((n_mels, frames) tensors, normalised) --------------------------------------------
def vtlp_positions(n_mels: int, alpha: float, boundary: float = 0.8) -> np.ndarray:
    """Where output bin ``m`` reads the input (fractional bin index), for warp factor ``alpha``.

    Piecewise linear on the normalised mel axis ``x = m / (n_mels - 1)``: ``x -> x / alpha`` up to
    ``boundary * min(1, alpha)``, then the straight line to ``(1, 1)``, so both ends stay fixed and the map
    is strictly increasing (monotone) for any ``alpha > 0``. ``alpha > 1`` stretches formants upwards
    (a shorter vocal tract)."""
    x = np.linspace(0.0, 1.0, n_mels)
    b = boundary * min(1.0, alpha)
    lo = x / alpha
    yb = b / alpha
    hi = yb + (x - b) * (1.0 - yb) / (1.0 - b)
    return np.where(x <= b, lo, hi) * (n_mels - 1)


def warp_mel(feats: torch.Tensor, alpha: float) -> torch.Tensor:
    """``feats (n_mels, frames)`` resampled along the mel axis at :func:`vtlp_positions` (linear
    interpolation)."""
    if alpha == 1.0:
        return feats
    n = feats.shape[0]
    pos = torch.from_numpy(vtlp_positions(n, alpha)).to(feats.dtype)
    i0 = pos.floor().long().clamp(0, n - 1)
    i1 = (i0 + 1).clamp(max=n - 1)
    w = (pos - i0.to(pos.dtype))[:, None]
    return feats[i0] * (1 - w) + feats[i1] * w


def spec_augment(feats: torch.Tensor, rng: np.random.Generator, *, time_masks: int, time_mask_frames: int,
                 max_time_ratio: float, freq_masks: int, freq_mask_bins: int
                 ) -> tuple[torch.Tensor, list[tuple[str, int, int]]]:
    """Time and frequency masks set to 0 on a copy of ``feats (n_mels, frames)``.

    Each mask's width is uniform in ``0 .. max`` (time: ``min(time_mask_frames, max_time_ratio * frames
    / time_masks)``), its start uniform over the positions where it fits. Returns the masked features
    and the masks as ``("time" | "freq", start, width)``."""
    out = feats.clone()
    n_mels, T = feats.shape
    masks = []
    if time_masks:
        cap = min(time_mask_frames, int(max_time_ratio * T / time_masks))
        for _ in range(time_masks):
            w = int(rng.integers(0, cap + 1)) if cap > 0 else 0
            s = int(rng.integers(0, T - w + 1))
            out[:, s:s + w] = 0.0
            masks.append(("time", s, w))
    for _ in range(freq_masks):
        w = int(rng.integers(0, min(freq_mask_bins, n_mels) + 1))
        s = int(rng.integers(0, n_mels - w + 1))
        out[s:s + w, :] = 0.0
        masks.append(("freq", s, w))
    return out, masks


# -- the per-utterance pipeline ------------------------------------------------------------------------
@dataclass
class Draw:
    """What was drawn for one utterance (for logs and tests)."""

    speed: float = 1.0
    reverb: int | None = None  # index into the RIR bank
    snr: float | None = None
    noise: str | None = None  # "beta=<b>" or a noise file path
    vtlp: float = 1.0
    masks: list = field(default_factory=list)

    @property
    def waveform(self) -> bool:
        """Does this draw need the audio (speed, reverberation or noise)?"""
        return self.speed != 1.0 or self.reverb is not None or self.snr is not None


class Augmenter:
    """Augments training items; picklable (it travels to ``DataLoader`` workers).

    ``features``: the run's :class:`~toposcope.features.FeatureConfig`; ``max_speed[i]``: the largest
    speed factor item ``i`` may get (CTC still needs enough output frames; default: no limit).
    """

    def __init__(self, config: AugmentConfig, features, *, seed: int = 0, max_speed: Sequence[float] | None = None):
        self.config, self.features, self.seed = config, features, int(seed)
        self.max_speed = None if max_speed is None else [float(s) for s in max_speed]
        self.noise_files: list[str] = []
        if config.noise_dir:
            root = Path(config.noise_dir)
            if not root.is_dir():
                raise FileNotFoundError(f"augment noise_dir {root} is not a folder")
            self.noise_files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in _NOISE_SUFFIXES)
            if not self.noise_files:
                raise FileNotFoundError(f"augment noise_dir {root} holds no {'/'.join(_NOISE_SUFFIXES)} file")
        self.rirs: list[np.ndarray] = []
        if config.enabled and config.reverb_prob > 0:
            self.engine = rir_engine(config.rir_engine)
            make = room_rir if self.engine == "pyroomacoustics" else synthetic_rir
            g = np.random.default_rng([self.seed & 0xFFFFFFFF, 0xB00])
            for _ in range(config.rir_bank):
                rt60 = float(g.uniform(*config.rt60))
                self.rirs.append(make(rt60, features.sample_rate, g))
        else:
            self.engine = None

    def draw(self, rng: np.random.Generator, item: int | None = None) -> Draw:
        """Draw the waveform decisions (speed, reverberation, noise) and the VTLP factor, in a fixed order."""
        c, d = self.config, Draw()
        speeds = c.speeds
        if self.max_speed is not None and item is not None:
            speeds = tuple(s for s in speeds if s <= self.max_speed[item]) or (1.0,)
        d.speed = float(speeds[int(rng.integers(len(speeds)))])
        if rng.random() < c.reverb_prob:
            d.reverb = int(rng.integers(len(self.rirs)))
        if rng.random() < c.noise_prob:
            d.snr = float(rng.uniform(*c.snr_db))
            if self.noise_files and rng.random() < c.noise_file_prob:
                d.noise = self.noise_files[int(rng.integers(len(self.noise_files)))]
            else:
                d.noise = f"beta={float(rng.uniform(0.0, 2.0)):.6g}"
        if rng.random() < c.vtlp_prob:
            d.vtlp = float(rng.uniform(*c.vtlp))
        return d

    def _noise(self, d: Draw, n: int, rng: np.random.Generator) -> np.ndarray:
        if d.noise.startswith("beta="):
            return coloured_noise(n, float(d.noise[5:]), rng)
        from .audio import read_audio

        x = read_audio(d.noise, sample_rate=self.features.sample_rate, resample_to_rate=True, mix_to_mono=True)
        if len(x) < n:
            x = np.tile(x, -(-n // max(len(x), 1)))
        s = int(rng.integers(0, len(x) - n + 1))
        return x[s:s + n]

    def waveform(self, wave: np.ndarray, d: Draw, rng: np.random.Generator) -> np.ndarray:
        """Speed, then reverberation, then noise (so the noise is not reverberant)."""
        wave = speed_perturb(wave, d.speed)
        if d.reverb is not None:
            wave = reverberate(wave, self.rirs[d.reverb])
        if d.snr is not None:
            wave = add_noise(wave, self._noise(d, len(wave), rng), d.snr)
        return wave

    def __call__(self, feats, audio_path, rng: np.random.Generator, item: int | None = None
                 ) -> tuple[torch.Tensor, Draw]:
        """Augmented normalised features ``(n_mels, frames')`` of one utterance. ``feats``: its cached
        features, or a function returning them (called only when no waveform transform is drawn);
        ``None``: always compute them from ``audio_path``."""
        from .audio import read_audio
        from .features import log_mel

        c, d = self.config, self.draw(rng, item)
        if not d.waveform and callable(feats):
            feats = feats()
        if d.waveform or feats is None:
            wave = read_audio(audio_path, sample_rate=self.features.sample_rate)
            wave = self.waveform(wave, d, rng)
            feats = log_mel(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), self.features)
        feats = warp_mel(feats, d.vtlp)
        feats, d.masks = spec_augment(feats, rng, time_masks=c.time_masks, time_mask_frames=c.time_mask_frames,
                                      max_time_ratio=c.max_time_ratio, freq_masks=c.freq_masks,
                                      freq_mask_bins=c.freq_mask_bins)
        return feats, d
