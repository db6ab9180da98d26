"""One writer per run folder: an advisory lock on ``RUN/.lock`` (``docs/method.md`` § Reliability).

Every command that writes into a run folder (``train``, ``evaluate``, ``profile``, ``maps``, ``layout``,
``optimize``, ``report``) holds the lock while it writes::

    with run_lock(run_dir, "profile"):
        ...

A second writer gets :class:`RunLockedError` at once (no waiting), naming the folder and the command
holding it. The lock is ``fcntl.flock`` on an open file descriptor, so the kernel releases it when the
holder exits, however it exits (a killed run never leaves a stale lock). The lock is re-entrant within
one process (a library call that locks, called from another that already holds the lock, just goes on).
On entry, temp files left by killed writers (``.*.tmp``) are removed from the run folder.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

from ._util import remove_stale_temp

__all__ = ["run_lock", "RunLockedError", "LOCK_FILE"]

LOCK_FILE = ".lock"

_held: dict[str, int] = {}  # resolved run folder -> nesting depth in this process
_guard = threading.Lock()


class RunLockedError(ValueError):
    """Another process is writing into this run folder."""


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or "another process"
    except OSError:
        return "another process"


@contextmanager
def run_lock(run_dir, command: str = "toposcope"):
    """Hold the run folder's write lock for the ``with`` block (created if missing)."""
    import fcntl

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = str(run_dir.resolve())
    with _guard:
        if _held.get(key):
            _held[key] += 1
            reentrant = True
        else:
            reentrant = False
    if reentrant:
        try:
            yield run_dir
        finally:
            with _guard:
                _held[key] -= 1
        return
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(f"{run_dir}: run folder is in use by {_holder(path)}; wait for it to finish "
                                 f"(or stop it) and try again") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"`toposcope {command}` (pid {os.getpid()})\n".encode())
        remove_stale_temp(run_dir)
        for sub in ("checkpoints", "maps", "profiles", "eval"):
            remove_stale_temp(run_dir / sub)
        with _guard:
            _held[key] = 1
        try:
            yield run_dir
        finally:
            with _guard:
                _held.pop(key, None)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
