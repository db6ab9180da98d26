"""A small NIST SPHERE reader (TIMIT's ``.WAV`` files), docs/method.md § Data and phones.

A SPHERE file starts with a text header: ``NIST_1A\\n``, the header size in bytes (usually
``   1024\\n``), then ``name -type value`` lines (``-i`` integer, ``-r`` real, ``-sN`` string of N
characters) up to ``end_head``. Samples follow the header. Only uncompressed linear PCM
(``sample_coding`` ``pcm``, 1 or 2 bytes per sample, any byte order) is supported;
shorten-compressed files (``pcm,embedded-shorten-...``) and mu-law are an :class:`SphereError`
naming the file (decompress them first, e.g. with ``sph2pipe``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import AudioError
from ..validation import check_audio_header

__all__ = ["SphereError", "is_sphere", "read_sphere_header", "read_sphere"]

MAGIC = b"NIST_1A"
#: A header larger than this is corrupt (real ones are 1024 bytes, rarely a few KiB).
MAX_HEADER = 1 << 20


class SphereError(AudioError):
    """A SPHERE file that is malformed, truncated, or uses an unsupported coding."""


def is_sphere(path) -> bool:
    """True when the file starts with the ``NIST_1A`` magic."""
    try:
        with open(path, "rb") as f:
            return f.read(7) == MAGIC
    except OSError:
        return False


def _parse_header(raw: bytes, path) -> tuple[dict, int]:
    if not raw.startswith(MAGIC):
        raise SphereError(f"{path}: not a NIST SPHERE file (no NIST_1A header)")
    lines = raw.split(b"\n")
    if len(lines) < 3:
        raise SphereError(f"{path}: truncated SPHERE header")
    try:
        size = int(lines[1].strip())
    except ValueError:
        raise SphereError(f"{path}: SPHERE header size {lines[1][:20]!r} is not an integer") from None
    if size < 16:
        raise SphereError(f"{path}: SPHERE header size {size} is too small")
    fields: dict = {}
    ended = False
    for line in raw[:size].split(b"\n")[2:]:
        text = line.decode("ascii", errors="replace").strip()
        if not text or text.startswith(";"):
            continue
        if text == "end_head":
            ended = True
            break
        parts = text.split(None, 2)
        if len(parts) < 3 or not parts[1].startswith("-"):
            raise SphereError(f"{path}: malformed SPHERE header line {text!r}")
        name, typ, value = parts
        try:
            if typ == "-i":
                fields[name] = int(value)
            elif typ == "-r":
                fields[name] = float(value)
            elif typ.startswith("-s"):
                n = int(typ[2:]) if len(typ) > 2 else len(value)
                fields[name] = value[:n]
            else:
                raise ValueError(typ)
        except ValueError:
            raise SphereError(f"{path}: malformed SPHERE header line {text!r}") from None
    if not ended:
        raise SphereError(f"{path}: SPHERE header has no end_head within its {size} bytes (truncated?)")
    return fields, size


def read_sphere_header(path) -> tuple[dict, int]:
    """``(fields, header_size)`` of a SPHERE file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            if not head.startswith(MAGIC):
                raise SphereError(f"{path}: not a NIST SPHERE file (no NIST_1A header)")
            try:
                size = int(head.split(b"\n")[1].strip())
            except (IndexError, ValueError):
                raise SphereError(f"{path}: malformed SPHERE header size") from None
            if not 16 <= size <= MAX_HEADER:
                raise SphereError(f"{path}: SPHERE header size {size} cannot be true (allowed 16..{MAX_HEADER})")
            f.seek(0)
            raw = f.read(max(size, 16))
    except OSError as e:
        raise SphereError(f"{path}: cannot read ({e})") from None
    if len(raw) < size:
        raise SphereError(f"{path}: truncated SPHERE header ({len(raw)} of {size} bytes)")
    return _parse_header(raw, path)


def _int_field(fields: dict, name: str, path, default: int | None = None) -> int:
    """An integer header field (``-i``; a whole ``-r`` is accepted); anything else names the field."""
    v = fields.get(name, default)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int):
        raise SphereError(f"{path}: SPHERE header field {name} must be an integer, got {v!r:.40}")
    return v


def read_sphere(path) -> tuple[np.ndarray, int]:
    """Read a PCM SPHERE file as float32 ``(samples, channels)`` in [-1, 1] and its sample rate."""
    path = Path(path)
    fields, size = read_sphere_header(path)
    coding = str(fields.get("sample_coding", "pcm")).lower()
    if "shorten" in coding or "wavpack" in coding or "shn" in coding:
        raise SphereError(f"{path}: SPHERE audio is compressed ({coding!r}); decompress it first "
                          f"(e.g. sph2pipe -f wav), only uncompressed pcm is supported")
    if coding != "pcm":
        raise SphereError(f"{path}: unsupported SPHERE sample_coding {coding!r}; only 'pcm' is supported")
    for req in ("sample_count", "sample_rate"):
        if req not in fields:
            raise SphereError(f"{path}: SPHERE header lacks {req}")
    count, rate = _int_field(fields, "sample_count", path), _int_field(fields, "sample_rate", path)
    channels = _int_field(fields, "channel_count", path, 1)
    nbytes = _int_field(fields, "sample_n_bytes", path, 2)
    order = str(fields.get("sample_byte_format", "01" if nbytes == 2 else "1"))
    if nbytes not in (1, 2):
        raise SphereError(f"{path}: unsupported sample_n_bytes {nbytes} (allowed: 1, 2)")
    # sizes against the file before reading anything (a sample_count of 10^15 is an error, not a MemoryError)
    check_audio_header(path, samplerate=rate, channels=channels, frames=count, subtype=None, error=SphereError)
    have = max(0, path.stat().st_size - size)
    if count * channels * nbytes > have:
        raise SphereError(f"{path}: truncated SPHERE audio: header promises {count} samples x {channels} "
                          f"channel(s) ({count * channels * nbytes} bytes) but only {have} bytes follow the header")
    if nbytes == 2:
        if order == "01":
            dtype = np.dtype("<i2")
        elif order == "10":
            dtype = np.dtype(">i2")
        else:
            raise SphereError(f"{path}: unsupported sample_byte_format {order!r} for 2-byte samples "
                              f"(allowed: 01 little-endian, 10 big-endian)")
        scale = 32768.0
    elif nbytes == 1:
        dtype, scale = np.dtype("i1"), 128.0
    else:
        raise SphereError(f"{path}: unsupported sample_n_bytes {nbytes} (allowed: 1, 2)")
    need = count * channels * nbytes
    with open(path, "rb") as f:
        f.seek(size)
        data = f.read(need)
    if len(data) < need:
        raise SphereError(f"{path}: truncated SPHERE audio: header promises {count} samples x {channels} "
                          f"channel(s) ({need} bytes) but only {len(data)} bytes follow the header")
    if count == 0:
        raise SphereError(f"{path}: SPHERE file holds no samples")
    wave = np.frombuffer(data, dtype=dtype).astype(np.float32) / scale
    return wave.reshape(count, channels), rate
