"""Input validation in one place (``docs/method.md`` § Reliability; ``docs/bad-inputs.md``).

Every reader of user input goes through these checks: ``Corpus.load`` / ``read_manifest`` and
``toposcope check`` share :func:`iter_manifest` (one manifest parser), every importer checks its
numbers with :func:`finite_time` and its command-line fractions with :func:`check_fraction`, and
every audio reader checks header fields against the file (:func:`check_audio_header`) *before* it
allocates anything, so a header promising 10^15 samples or a 2^31 Hz rate is an error naming the
file, never a ``MemoryError``.

The errors are the project's own ``ValueError`` subclasses (:class:`~toposcope.corpus.CorpusError`,
:class:`~toposcope.audio.AudioError`, :class:`~toposcope.importers.common.ImporterError`, ...): each
check takes the class to raise, so callers keep their own error type. Messages start with the file
(and line) they are about.

Adding a parser (e.g. Lhotse manifests): read with :func:`decode_lines` / :func:`parse_json`, check
times with :func:`finite_time` and segments with :func:`~toposcope.corpus.validate_segments`, and
add a property test to ``tests/test_fuzz.py`` (``PARSERS``) so the fuzzers cover it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path
from typing import Iterator

__all__ = [
    "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE", "MAX_CHANNELS", "MAX_AUDIO_SECONDS", "is_number", "finite_time",
    "check_fraction", "check_count", "fraction_arg", "count_arg", "positive_arg", "check_relative_path",
    "check_contained", "check_audio_header", "decode_lines", "parse_json", "iter_manifest",
]

#: Plausible sample rates (Hz): anything outside is a corrupt header, not audio.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
#: More channels than this is a corrupt header.
MAX_CHANNELS = 64
#: Longest audio file accepted (s): 24 hours. A header promising more is corrupt (or not an utterance).
MAX_AUDIO_SECONDS = 24 * 3600
#: Bytes per sample of uncompressed soundfile subtypes (a header's frame count is checked against
#: the file size for these; compressed formats are bounded by MAX_AUDIO_SECONDS only).
_PCM_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
              "ULAW": 1, "ALAW": 1}
#: Containers that store those subtypes uncompressed (FLAC, OGG, ... report "PCM_16" too, but compress).
_DRIVE = re.compile(r"[A-Za-z]:")  # a Windows drive (C:, C:\\x, C:x)
_UNCOMPRESSED = {"WAV", "WAVEX", "W64", "RF64", "AIFF", "AU", "RAW", "NIST"}


# ------------------------------------------------------------------------------------------ numbers
def is_number(x) -> bool:
    """A real JSON/Python number (``bool`` is not)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def finite_time(x, where: str, what: str, error: type[ValueError]) -> float:
    """``x`` as a finite float, else ``error("<where>: <what> must be a finite number, got <x>")``."""
    if type(x) is float and x - x == 0.0:  # fast path: a finite float (inf - inf and nan - nan are nan)
        return x
    try:
        v = float(x) if is_number(x) else math.nan
    except OverflowError:  # an int too large for a float
        v = math.inf
    if not math.isfinite(v):
        if isinstance(x, int) and not isinstance(x, bool):
            shown = f"an integer of {x.bit_length()} bits"
        else:
            shown = str(x) if is_number(x) else repr(x)[:40]
        raise error(f"{where}: {what} must be a finite number, got {shown}")
    return v


def check_fraction(value, name: str, error: type[ValueError] = ValueError, *, upper_open: bool = True) -> float:
    """A fraction in ``[0, 1)`` (``upper_open=False``: ``[0, 1]``); NaN, inf, negatives are errors."""
    if not is_number(value) or not math.isfinite(float(value)) or not (
            0.0 <= float(value) < 1.0 if upper_open else 0.0 <= float(value) <= 1.0):
        bound = "1)" if upper_open else "1]"
        raise error(f"{name} must be a number in [0, {bound}, got {value!r}")
    return float(value)


def check_count(value, name: str, error: type[ValueError] = ValueError, *, minimum: int = 0) -> int:
    """An integer ``>= minimum`` (``bool`` and floats are errors)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def fraction_arg(text: str) -> float:
    """argparse ``type=`` for a fraction in ``[0, 1)``: ``--valid-fraction nan`` is a usage error."""
    try:
        return check_fraction(float(text), "a fraction")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e) if "fraction" in str(e) else f"not a number: {text!r}") from None


def count_arg(minimum: int = 0):
    """argparse ``type=`` for an integer ``>= minimum``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {v}")
        return v
    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_arg(text: str) -> float:
    """argparse ``type=`` for a finite number > 0 (hours, seconds)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return v


# -------------------------------------------------------------------------------------------- paths
def check_relative_path(rel, where: str, error: type[ValueError], what: str = "audio path") -> str:
    """A relative path that stays inside its folder: a non-empty string, not absolute (POSIX or
    Windows), without ``..`` components or NUL bytes."""
    if not isinstance(rel, str) or not rel.strip():
        raise error(f"{where}: {what} must be a non-empty relative path, got {rel!r}")
    if "\x00" in rel:
        raise error(f"{where}: {what} {rel!r} contains a NUL byte")
    if rel.startswith(("/", "\\", "~")) or _DRIVE.match(rel):
        raise error(f"{where}: {what} {rel!r} is absolute; it must be relative to the corpus folder")
    if ".." in rel.replace("\\", "/").split("/"):
        raise error(f"{where}: {what} {rel!r} leaves the corpus folder ('..')")
    return rel


def check_contained(root, rel: str, where: str, error: type[ValueError], what: str = "audio path",
                    *, real_root: str | None = None, dir_cache: dict | None = None) -> Path:
    """``root / rel`` after :func:`check_relative_path`, with symlinks resolved: it must still lie
    inside ``root`` (resolved too). Returns the (unresolved) path. ``dir_cache`` (a dict kept across
    calls) remembers resolved folders, so a manifest of 10^5 lines resolves each folder once."""
    check_relative_path(rel, where, error, what)
    root = Path(root)
    real_root = real_root or os.path.realpath(root)
    full = os.path.join(root, rel)
    if dir_cache is None or os.path.islink(full):
        real = os.path.realpath(full)
    else:
        head, tail = os.path.split(full)
        if head not in dir_cache:
            dir_cache[head] = os.path.realpath(head)
        real = os.path.join(dir_cache[head], tail)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise error(f"{where}: {what} {rel!r} resolves to {real}, outside the corpus folder {real_root} "
                    f"(a symlink leaves it)")
    return root / rel


# -------------------------------------------------------------------------------------------- audio
def check_audio_header(path, *, samplerate, channels, frames, subtype: str | None, error: type[ValueError],
                       data_bytes: int | None = None, container: str | None = "WAV") -> None:
    """Header fields that cannot be true are errors before any sample is read: rate outside
    [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE], channels outside [1, MAX_CHANNELS], more than
    MAX_AUDIO_SECONDS, or (uncompressed formats) more frames than the file's bytes can hold.
    ``data_bytes``: bytes available for samples (default: the file size); ``container``: soundfile's
    format name (the byte check applies to uncompressed containers only)."""
    for name, v in (("sample rate", samplerate), ("channel count", channels), ("frame count", frames)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise error(f"{path}: {name} {v!r} in the header is not an integer")
    if not MIN_SAMPLE_RATE <= samplerate <= MAX_SAMPLE_RATE:
        raise error(f"{path}: the header's sample rate {samplerate} Hz cannot be true (allowed "
                    f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz): corrupt header?")
    if not 1 <= channels <= MAX_CHANNELS:
        raise error(f"{path}: the header's channel count {channels} cannot be true (allowed 1..{MAX_CHANNELS})")
    if frames < 0:
        raise error(f"{path}: the header's frame count {frames} is negative")
    if frames > MAX_AUDIO_SECONDS * samplerate:
        raise error(f"{path}: the header promises {frames} frames ({frames / samplerate / 3600:.0f} h at "
                    f"{samplerate} Hz), more than the {MAX_AUDIO_SECONDS // 3600} h allowed: corrupt header?")
    uncompressed = container is not None and str(container).upper() in _UNCOMPRESSED
    bps = _PCM_BYTES.get(str(subtype).upper()) if subtype is not None and uncompressed else None
    if bps is not None:
        have = os.path.getsize(path) if data_bytes is None else data_bytes
        need = frames * channels * bps
        if need > have:
            raise error(f"{path}: the header promises {frames} frames x {channels} channel(s) x {bps} bytes "
                        f"({need} bytes) but the file holds {have}: truncated or corrupt")


# --------------------------------------------------------------------------------------------- text
def decode_lines(path, error: type[ValueError]) -> Iterator[tuple[int, str | ValueError]]:
    """``(line_number, text)`` for each line of a UTF-8 file (``\\n``-separated, line end removed);
    a line that is not UTF-8 yields ``(n, error(...))`` instead (the caller raises or collects it).
    A missing file, a folder or an unreadable file raises ``error`` naming it."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder, expected a file")
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    with f:
        try:
            for n, raw in enumerate(f, 1):
                try:
                    yield n, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as e:
                    yield n, error(f"{path}:{n}: not UTF-8 text ({e.reason} at byte {e.start} of the line)")
        except OSError as e:
            raise error(f"{path}: cannot read ({e.strerror or e})") from None


def parse_json(text: str, where: str, error: type[ValueError]):
    """``json.loads`` with every failure as ``error`` naming ``where``: invalid JSON, nesting too deep
    (``RecursionError``), integers too long to convert."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply") from None
    except ValueError as e:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise error(f"{where}: invalid JSON ({e})") from None


# ------------------------------------------------------------------------------------------ manifest
def iter_manifest(path, root=None, *, alignments: bool = True) -> Iterator[tuple[int, object]]:
    """THE manifest parser: ``(line, Utterance)`` for every valid line and ``(line, CorpusError)`` for
    every bad one, in file order (blank lines skipped). Used by :func:`~toposcope.corpus.read_manifest`
    (raises the first error) and by ``toposcope check`` (collects them all).

    Checks: UTF-8, JSON (any depth), an object with the required fields and types, finite numbers,
    segments (:func:`~toposcope.corpus.validate_segments`), unique ids, and the ``audio`` path inside
    ``root`` (default: the manifest's folder; symlinks resolved). A missing manifest or a folder in
    its place raises :class:`~toposcope.corpus.CorpusError`. ``alignments=False``: every line is
    validated as usual, but the utterances keep no ``phones``/``words``/``source_phones`` (training and
    evaluation need only the metadata; the alignments are most of a parsed line's memory).
    """
    from .corpus import MANIFEST, CorpusError, Utterance

    path = Path(path)
    root = path.parent if root is None else Path(root)
    if not path.exists():
        raise CorpusError(f"{path}: manifest not found (a corpus directory holds {MANIFEST} and audio/)")
    if path.is_dir():
        raise CorpusError(f"{path}: is a folder, expected the manifest file (one JSON object per line)")
    real_root = os.path.realpath(root)
    seen: dict[str, int] = {}
    dirs: dict[str, str] = {}
    for n, line in decode_lines(path, CorpusError):
        if isinstance(line, ValueError):
            yield n, line
            continue
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            u = Utterance.from_dict(parse_json(line, where, CorpusError), where)
            u.validate(where)
            check_contained(root, u.audio, f"{where} (utterance {u.id!r})", CorpusError, real_root=real_root,
                            dir_cache=dirs)
        except CorpusError as e:
            yield n, e
            continue
        if u.id in seen:
            yield n, CorpusError(f"{where}: duplicate utterance id {u.id!r} (first on line {seen[u.id]})")
            continue
        seen[u.id] = n
        if not alignments:
            u.phones, u.words, u.source_phones = [], None, None
        yield n, u
