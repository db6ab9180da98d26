"""Audio I/O (docs/method.md § Data and phones, §9): 16 kHz mono float32, clear errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from toposcope.audio import AudioError, read_audio, resample, write_wav

SR = 16000


def tone(n, sr=SR, f=440.0):
    return (0.5 * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)


def test_write_read_round_trip(tmp_path):
    x = tone(1600)
    write_wav(tmp_path / "sub" / "a.wav", x)
    assert not (tmp_path / "sub" / "a.wav.tmp").exists()
    info = sf.info(str(tmp_path / "sub" / "a.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    y = read_audio(tmp_path / "sub" / "a.wav")
    assert y.dtype == np.float32 and y.shape == (1600,)
    np.testing.assert_allclose(y, x, atol=1 / 32767)
    write_wav(tmp_path / "clip.wav", np.array([2.0, -2.0], np.float32))  # clipped, not wrapped
    np.testing.assert_allclose(read_audio(tmp_path / "clip.wav"), [32767 / 32768, -1.0], atol=1e-6)


def test_rate_and_channels(tmp_path):
    sf.write(str(tmp_path / "r8.wav"), tone(800, 8000), 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"r8\.wav: expected 16000 Hz audio, got 8000 Hz"):
        read_audio(tmp_path / "r8.wav")
    y = read_audio(tmp_path / "r8.wav", resample_to_rate=True)
    assert y.shape == (1600,)
    sf.write(str(tmp_path / "st.wav"), np.stack([tone(100), -tone(100)], 1), SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"st\.wav: expected mono audio, got 2 channels"):
        read_audio(tmp_path / "st.wav")
    np.testing.assert_allclose(read_audio(tmp_path / "st.wav", mix_to_mono=True), 0.0, atol=1e-7)


def test_bad_files(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: audio file not found"):
        read_audio(tmp_path / "nope.wav")
    (tmp_path / "junk.wav").write_bytes(b"definitely not a wav file" * 10)
    with pytest.raises(AudioError, match=r"junk\.wav: unreadable audio"):
        read_audio(tmp_path / "junk.wav")
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, np.float32), SR, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"empty\.wav: audio file holds no samples"):
        read_audio(tmp_path / "empty.wav")
    write_wav(tmp_path / "t.wav", tone(SR))
    (tmp_path / "t.wav").write_bytes((tmp_path / "t.wav").read_bytes()[:10044])
    with pytest.raises(AudioError, match=r"t\.wav: truncated audio: the data chunk promises 32000 bytes, "
                                         r"the file holds 10000"):
        read_audio(tmp_path / "t.wav")
    assert issubclass(AudioError, ValueError)


def test_resample_length_and_frequency():
    x = tone(22050, 22050, f=1000.0)
    y = resample(x, 22050, SR)
    assert y.shape == (SR,) and y.dtype == np.float32
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * SR / len(y) - 1000.0) <= 1.0
    assert resample(x, SR, SR) is x


def _patched(path, src, offset, fmt, value):
    import struct

    b = bytearray(src.read_bytes())
    b[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(b))
    return path


def test_impossible_headers_are_errors_not_memory_errors(tmp_path):
    """A WAV header rate of 2^31 - 1 Hz used to reach the resampler (MemoryError, even with --skip-bad)."""
    from toposcope.importers.common import load_audio
    from toposcope.validation import check_audio_header

    write_wav(tmp_path / "ok.wav", tone(1600))
    big = _patched(tmp_path / "rate.wav", tmp_path / "ok.wav", 24, "<I", 2147483647)
    for read in (read_audio, lambda p: read_audio(p, resample_to_rate=True), load_audio):
        with pytest.raises(AudioError, match=r"rate\.wav: the header's sample rate 2147483647 Hz cannot be true"):
            read(big)
    low = _patched(tmp_path / "low.wav", tmp_path / "ok.wav", 24, "<I", 3)
    with pytest.raises(AudioError, match=r"low\.wav: the header's sample rate 3 Hz cannot be true"):
        load_audio(low)
    # frame counts are checked against the file size (uncompressed) and a 24 h cap (any format)
    (tmp_path / "x.wav").write_bytes(b"\0" * 3244)
    with pytest.raises(AudioError, match=r"x\.wav: the header promises 1000 frames x 2 channel\(s\) x 2 bytes "
                                         r"\(4000 bytes\) but the file holds 3244"):
        check_audio_header(tmp_path / "x.wav", samplerate=SR, channels=2, frames=1000, subtype="PCM_16",
                           error=AudioError)
    with pytest.raises(AudioError, match="more than the 24 h allowed"):
        check_audio_header(tmp_path / "ok.wav", samplerate=SR, channels=1, frames=10 ** 15, subtype="FLAC",
                           error=AudioError)
    with pytest.raises(AudioError, match="channel count 100000 cannot be true"):
        check_audio_header(tmp_path / "ok.wav", samplerate=SR, channels=100000, frames=1, subtype=None,
                           error=AudioError)
    check_audio_header(tmp_path / "ok.wav", samplerate=SR, channels=1, frames=1600, subtype="PCM_16",
                       error=AudioError)  # the real header passes
    (tmp_path / "d.wav").mkdir()
    with pytest.raises(AudioError, match=r"d\.wav: is a folder"):
        read_audio(tmp_path / "d.wav")


def test_compressed_files_pass_the_header_check(tmp_path):
    """FLAC reports subtype PCM_16 but compresses: its frame count must not be checked against 2 bytes/sample."""
    x = np.zeros(SR, np.float32)  # silence compresses far below 2 bytes per sample
    sf.write(str(tmp_path / "a.flac"), x, SR, subtype="PCM_16")
    assert (tmp_path / "a.flac").stat().st_size < 2 * SR
    assert read_audio(tmp_path / "a.flac").shape == (SR,)
