"""Small shared helpers, one of each: atomic file writes, JSON / JSONL reading and writing, progress bars.

Atomic writes (``docs/method.md`` § Reliability): the bytes go to a uniquely named temp file in the
target's own directory (``.<name>.<random>.tmp``, so concurrent writers never share a temp file),
are flushed and fsynced, then ``os.replace``-d over the target, and the directory is fsynced so the
rename survives a crash. A failed write removes its temp file and leaves the target as it was.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["atomic_write", "write_text_atomic", "write_bytes_atomic", "write_json_atomic", "read_json",
           "read_jsonl", "jsonable", "fsync_dir", "progress_enabled", "progress", "TMP_SUFFIX",
           "remove_stale_temp"]

#: Suffix of every temp file the helpers write (``remove_stale_temp`` cleans them up).
TMP_SUFFIX = ".tmp"


def fsync_dir(path) -> None:
    """fsync a directory (makes a rename inside it durable); a no-op where directories cannot be opened."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write: Callable[[Any], None], *, mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it over ``path`` (all or nothing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_text_atomic(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")


def write_bytes_atomic(path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def jsonable(obj):
    """Plain JSON types; non-finite floats become ``None`` (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_json_atomic(path, obj, *, indent: int | None = 1) -> Path:
    """Strict JSON (NaN/inf written as ``null``), atomically."""
    return write_text_atomic(path, json.dumps(jsonable(obj), indent=indent, ensure_ascii=False, allow_nan=False))


def read_json(path, *, missing_ok: bool = False):
    """Parse a JSON file; errors name the file. ``missing_ok``: ``None`` for a missing file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return None
        raise FileNotFoundError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, expected a JSON file") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{path}: not valid JSON ({e if isinstance(e, json.JSONDecodeError) else 'nested too deeply'})") from None


def read_jsonl(path, *, tolerant: bool = True, missing_ok: bool = True) -> list:
    """Objects of a JSON-lines file. ``tolerant``: skip lines that do not parse (a line cut short by
    an interrupted writer); otherwise the first such line raises an error naming file and line."""
    path = Path(path)
    out = []
    try:
        f = open(path, encoding="utf-8", errors="strict")
    except FileNotFoundError:
        if missing_ok:
            return out
        raise FileNotFoundError(f"{path}: file not found") from None
    with f:
        try:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    out.append(json.loads(line))
                except (json.JSONDecodeError, RecursionError) as e:
                    if not tolerant:
                        raise ValueError(f"{path}:{n}: not valid JSON ({e})") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e.reason})") from None
    return out


def progress_enabled(progress: bool = True) -> bool:
    """Progress bars are on unless ``progress=False`` or ``TOPOSCOPE_NO_PROGRESS=1``."""
    return bool(progress) and os.environ.get("TOPOSCOPE_NO_PROGRESS", "") not in ("1", "true", "yes")


def progress(iterable: Iterable | None = None, *, enabled: bool = True, leave: bool = False, **kw):
    """A tqdm bar (``tqdm.auto``) honouring :func:`progress_enabled`."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not progress_enabled(enabled), leave=leave, **kw)


def remove_stale_temp(folder) -> list[Path]:
    """Delete ``.*.tmp`` files left in ``folder`` (not recursive) by writers that were killed."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in folder.glob(f".*{TMP_SUFFIX}"):
            if p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed
