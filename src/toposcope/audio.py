"""Audio I/O: 16 kHz mono float32, with clear errors naming the file (docs/method.md § Data and phones, §9)."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["SAMPLE_RATE", "AudioError", "read_audio", "read_raw", "write_wav", "resample", "audio_info"]

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """Unreadable, truncated, or otherwise unusable audio."""


def _wav_truncation(path) -> str | None:
    """For a RIFF/WAVE file whose ``data`` chunk promises more bytes than the file holds, a message
    saying so (libsndfile silently reads what is there); ``None`` otherwise (also for non-WAV files
    and for streamed WAVs whose sizes are 0 / 0xFFFFFFFF placeholders)."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = Path(path).stat().st_size
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                cid, n = struct.unpack("<4sI", f.read(8))
                if cid == b"data":
                    if n in (0, 0xFFFFFFFF):
                        return None
                    have = size - pos - 8
                    if have < n:
                        return f"truncated audio: the data chunk promises {n} bytes, the file holds {have}"
                    return None
                pos += 8 + n + (n & 1)
    except OSError:
        return None
    return None


def resample(wave: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy), ``(samples,)`` -> ``(samples * sr_out / sr_in,)``."""
    if sr_in == sr_out:
        return wave
    from scipy.signal import resample_poly

    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(wave, sr_out // g, sr_in // g).astype(np.float32)


def audio_info(path):
    """``soundfile.info`` of a file whose header fields were checked against the file
    (:func:`toposcope.validation.check_audio_header`): impossible rates, channel counts or frame
    counts are an :class:`AudioError` naming the file before any sample is read."""
    from .validation import check_audio_header

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: audio file not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, expected an audio file")
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises several types (LibsndfileError, RuntimeError, ...)
        raise AudioError(f"{path}: unreadable audio ({e})") from None
    # container: FLAC/OGG/MPEG report subtype PCM_16 but compress, so only uncompressed ones get the byte check
    check_audio_header(path, samplerate=info.samplerate, channels=info.channels, frames=info.frames,
                       subtype=info.subtype, container=info.format, error=AudioError)
    return info


def read_raw(path) -> tuple[np.ndarray, int]:
    """Read any soundfile-readable file as float32 ``(samples, channels)`` and its rate.

    Missing, unreadable, truncated (WAV data chunk or header frame count), empty files and headers
    that cannot be true (:func:`audio_info`) are an :class:`AudioError` naming the file; whether the
    rate and channel count suit is the caller's to check.
    """
    path = Path(path)
    info = audio_info(path)
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types (LibsndfileError, RuntimeError, ...)
        raise AudioError(f"{path}: unreadable audio ({e})") from None
    if info.frames > 0 and wave.shape[0] < info.frames:
        raise AudioError(f"{path}: truncated audio: header promises {info.frames} frames, "
                         f"only {wave.shape[0]} could be read")
    truncated = _wav_truncation(path)
    if truncated:
        raise AudioError(f"{path}: {truncated}")
    if wave.shape[0] == 0:
        raise AudioError(f"{path}: audio file holds no samples")
    return wave, int(sr)


def read_audio(path, *, sample_rate: int = SAMPLE_RATE, resample_to_rate: bool = False,
               mix_to_mono: bool = False) -> np.ndarray:
    """Read a mono file as float32 ``(samples,)`` in [-1, 1].

    A different rate or channel count is an :class:`AudioError` unless ``resample_to_rate`` /
    ``mix_to_mono`` is set (the importers set them; training data must already be 16 kHz mono).
    """
    wave, sr = read_raw(path)
    if wave.shape[1] != 1:
        if not mix_to_mono:
            raise AudioError(f"{path}: expected mono audio, got {wave.shape[1]} channels")
        wave = wave.mean(axis=1, keepdims=True)
    wave = wave[:, 0]
    if sr != sample_rate:
        if not resample_to_rate:
            raise AudioError(f"{path}: expected {sample_rate} Hz audio, got {sr} Hz")
        wave = resample(wave, sr, sample_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)


def write_wav(path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV atomically (temp file + rename)."""
    from ._util import atomic_write

    data = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    atomic_write(path, lambda f: sf.write(f, data, sample_rate, subtype="PCM_16", format="WAV"))
