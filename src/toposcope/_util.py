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
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["atomic_write", "write_text_atomic", "write_bytes_atomic", "write_json_atomic", "read_json", "usable_cores",
           "read_jsonl", "append_jsonl", "jsonable", "fsync_dir", "progress_enabled", "progress", "TMP_SUFFIX",
           "remove_stale_temp", "atomic_dir"]

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


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def atomic_write(path, write: Callable[[Any], None], *, mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it over ``path`` (all or nothing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
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


def append_jsonl(path, obj) -> None:
    """Append ``obj`` to a JSON-lines file as one strict-JSON line (NaN/inf as ``null``), written with a
    single ``write`` and flushed, so a killed writer tears at most this last line (``read_jsonl`` skips it)."""
    line = json.dumps(jsonable(obj), ensure_ascii=False, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextmanager
def torch_threads(n: int):
    """Run the block with ``torch.set_num_threads(n)``; the previous count is restored afterwards."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


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


# ------------------------------------------------------------------------------ all-or-nothing folders
PARTIAL_SUFFIX = ".partial"


def _lock_dir(path: Path) -> int | None:
    """An exclusive ``flock`` on a folder (its fd, or ``None`` when another process holds it)."""
    import fcntl

    fd = os.open(str(path), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _remove_stale_partials(parent: Path, name: str, keep: Path | None = None) -> None:
    """Delete ``.<name>.*.partial`` folders whose writer is gone (nobody holds their lock)."""
    import shutil

    for p in parent.glob(f".{name}.*{PARTIAL_SUFFIX}"):
        if p.is_dir() and not p.is_symlink() and p != keep:
            fd = _lock_dir(p)
            if fd is not None:
                try:
                    shutil.rmtree(p, ignore_errors=True)
                finally:
                    os.close(fd)


def _is_nonempty_dir(path: Path) -> bool:
    try:
        return any(os.scandir(path))
    except NotADirectoryError:
        return True
    except FileNotFoundError:
        return False




@contextmanager
def atomic_dir(out, *, force: bool = False, resumable: bool = False, error: type[Exception] = ValueError):
    """Build a folder all or nothing (``docs/method.md`` § Reliability): yields a temporary folder beside
    ``out`` (``.<name>.<random>.partial``) to write into; when the ``with`` block succeeds it is renamed
    to ``out`` (and the parent fsynced), so ``out`` only ever appears complete.

    * An existing non-empty ``out`` is refused (``error`` naming it) unless ``force``; with ``force``
      it is replaced: old renamed aside, new renamed in, old deleted. An existing empty folder is
      replaced without ``force``. A file at ``out`` is always refused.
    * On failure (any exception, Ctrl-C included) the temporary folder is deleted and ``out`` is as it
      was; folders created above it are removed again.
    * ``resumable``: the temporary folder has a fixed name (``.<name>.partial``) and is kept on
      failure, so the next call for the same ``out`` continues where it stopped (``synth``).

    Every temporary folder is ``flock``-ed while in use: a second writer of the same resumable
    ``out`` gets ``error``, and partial folders of killed writers are removed on the next call.
    """
    import secrets
    import shutil

    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise error(f"{out}: exists and is not a folder")
    if _is_nonempty_dir(out) and not force:
        raise error(f"{out}: exists and is not empty; choose a new folder, or pass --force to replace it")
    parent = out.absolute().parent
    created = []
    for p in [parent, *parent.parents]:
        if p.exists():
            break
        created.append(p)
    parent.mkdir(parents=True, exist_ok=True)
    if resumable:
        tmp = parent / f".{out.name}{PARTIAL_SUFFIX}"
        if tmp.is_symlink() or (tmp.exists() and not tmp.is_dir()):
            raise error(f"{tmp}: exists and is not a folder (remove it)")
        tmp.mkdir(exist_ok=True)
    else:
        _remove_stale_partials(parent, out.name)
        tmp = parent / f".{out.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
        tmp.mkdir()
    fd = _lock_dir(tmp)
    if fd is None:
        raise error(f"{out}: another process is writing it (into {tmp}); wait for it to finish")
    try:
        try:
            yield tmp
            fsync_dir(tmp)
            old = None
            if out.exists():
                if _is_nonempty_dir(out) and not force:  # appeared while we were building
                    raise error(f"{out}: appeared (not empty) while it was being built; nothing replaced")
                old = parent / f".{out.name}.{secrets.token_hex(4)}.old"
                os.rename(out, old)
            try:
                os.rename(tmp, out)
            except OSError as e:
                if old is not None:
                    os.rename(old, out)
                raise error(f"{out}: could not move the finished folder into place ({e.strerror or e})") from None
            fsync_dir(parent)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            if not resumable:
                shutil.rmtree(tmp, ignore_errors=True)
                for p in created:  # innermost first
                    try:
                        p.rmdir()
                    except OSError:
                        break
            raise
    finally:
        os.close(fd)
