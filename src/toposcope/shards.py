"""Log-mel features on disk: extracted once into shards, read lazily per utterance (``docs/method.md`` § Reliability).

Layout of a store (one folder per feature config)::

    <cache>/features-<cfgkey>/
        shard-<uid>.npy          float32, 1-D: the (n_mels, frames) blocks of its utterances, back to back
        shard-<uid>.index.npz    ids (U,), stamps (U,), offsets (U,) int64 (in elements), frames (U,) int64,
                                 crc (U,) uint32, n_mels, elements (total float32 values in the .npy)
        config.json              the FeatureConfig (for people looking at the folder)

* ``cfgkey`` hashes the :class:`~toposcope.features.FeatureConfig` and :data:`FORMAT_VERSION`; a
  different config is a different folder.
* Each utterance's entry carries a *stamp* (audio path, file size, mtime): an utterance whose audio
  changed no longer matches its entry and is extracted again into a new shard (the old entry is
  ignored). Utterances sharing one audio file (same path, size and mtime) share one block, also when
  one of them is added to the manifest later.
* A shard is written in one piece (``.npy`` first, then its index, each atomically): a shard without
  an index is an interrupted (or still running) extraction and is ignored (``repair`` deletes it); the
  shards written before an interruption are kept, so extraction resumes where it stopped.
* Opening checks every shard's file size and ``.npy`` header against its index (cheap: no data is
  read); each read checks the block's CRC-32. A truncated or corrupt shard is a :class:`ShardError`
  naming the file; ``repair=True`` (``toposcope features --repair``) deletes it and extracts its
  utterances again.

Reads use ``os.pread`` on a file descriptor per process (no ``mmap``), so a process's resident memory
holds the batch being read and nothing else: it does not grow with the corpus. The ``.npy`` files stay
ordinary NumPy arrays (``np.load(path, mmap_mode="r")``) for anyone who wants to look at them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ._util import atomic_write, progress, remove_stale_temp, torch_threads, write_json_atomic
from .corpus import CorpusError

__all__ = ["ShardError", "ShardedFeatureStore", "FORMAT_VERSION", "config_key", "audio_stamp",
           "store_dir", "open_store", "extract", "verify_store", "SHARD_MB"]

#: Bumped when the on-disk layout changes (old folders are then simply not used).
FORMAT_VERSION = 1
#: Target size of one shard in MiB (a shard is the unit of parallel work and of resumption).
SHARD_MB = 64.0
_DTYPE = np.dtype("<f4")
#: Shard files one process keeps open at most.
MAX_OPEN = 128


class ShardError(CorpusError):
    """A feature shard that is missing, truncated or corrupt (the message names the file)."""


def config_key(cfg) -> str:
    """Hash of the feature config and the on-disk format version."""
    blob = json.dumps({"format": FORMAT_VERSION, **asdict(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def store_dir(cache_root, cfg) -> Path:
    return Path(cache_root) / f"features-{config_key(cfg)}"


def audio_stamp(path: Path, rel: str) -> str:
    """``"<audio>:<size>:<mtime_ns>"`` of an utterance's audio file (``missing`` when absent)."""
    try:
        st = os.stat(path)
        return f"{rel}:{st.st_size}:{st.st_mtime_ns}"
    except FileNotFoundError:
        return f"{rel}:missing"


# -- writing ---------------------------------------------------------------------------------------
def _npy_header_len(path: Path) -> tuple[int, tuple, np.dtype]:
    """``(data offset, shape, dtype)`` from a ``.npy`` header (reads only the header)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read(f)
        return f.tell(), shape, dtype


def _extract_one(folder: str, corpus_root: str, work: list[tuple[str, list[str], str]], cfg,
                 threads: int | None = 1) -> int:
    """Compute the features of ``work`` (``[(audio rel path, [ids], stamp)]``) into one new shard.

    Returns the number of utterance ids written. Runs in a worker process or in-process.
    """
    from .audio import read_audio
    from .features import log_mel

    if threads:
        torch.set_num_threads(threads)
    folder_p, root = Path(folder), Path(corpus_root)
    blocks, ids, stamps, offsets, frames, crcs = [], [], [], [], [], []
    pos = 0
    for rel, utt_ids, stamp in work:
        f = log_mel(read_audio(root / rel, sample_rate=cfg.sample_rate), cfg).numpy()  # (n_mels, frames)
        block = np.ascontiguousarray(f, dtype=_DTYPE).reshape(-1)
        crc = zlib.crc32(block.tobytes())
        blocks.append(block)
        for uid in utt_ids:
            ids.append(uid), stamps.append(stamp), offsets.append(pos), frames.append(f.shape[1]), crcs.append(crc)
        pos += block.size
    data = np.concatenate(blocks) if blocks else np.zeros(0, _DTYPE)
    name = f"shard-{uuid.uuid4().hex[:12]}"
    atomic_write(folder_p / f"{name}.npy", lambda fh: np.save(fh, data))
    index = dict(ids=np.array(ids, dtype=str), stamps=np.array(stamps, dtype=str),
                 offsets=np.array(offsets, np.int64), frames=np.array(frames, np.int64),
                 crc=np.array(crcs, np.uint32), n_mels=np.int64(cfg.n_mels), elements=np.int64(data.size),
                 format=np.int64(FORMAT_VERSION))
    atomic_write(folder_p / f"{name}.index.npz", lambda fh: np.savez(fh, **index))
    return len(ids)


def _plan(todo: list[tuple[str, list[str], str, float]], cfg, jobs: int, shard_mb: float) -> list[list]:
    """Cut ``[(audio, ids, stamp, seconds)]`` into shards of about ``shard_mb`` MiB, and into at least
    ``4 * jobs`` shards when there are enough files, so parallel workers stay busy to the end."""
    if not todo:
        return []
    bytes_per_s = cfg.sample_rate / cfg.hop * cfg.n_mels * 4
    total = sum(t[3] for t in todo) * bytes_per_s
    budget = shard_mb * 2 ** 20
    if jobs > 1:
        budget = min(budget, max(total / (4 * jobs), 1.0))
    shards, cur, size = [], [], 0.0
    for rel, ids, stamp, secs in todo:
        b = secs * bytes_per_s
        if cur and size + b > budget:
            shards.append(cur)
            cur, size = [], 0.0
        cur.append((rel, ids, stamp))
        size += b
    if cur:
        shards.append(cur)
    return shards


def extract(folder, corpus, utterances, cfg, *, jobs: int = 1, shard_mb: float = SHARD_MB,
            progress_bar: bool = True) -> int:
    """Extract the features of ``utterances`` (of ``corpus``) into new shards in ``folder``.

    ``jobs`` > 1 runs that many worker processes (one thread each); ``jobs == 1`` runs in this
    process, also on one thread. Utterances with the same audio file are computed once. Returns the
    number of utterances written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_audio: dict[str, list] = {}
    for u in utterances:
        stamp = audio_stamp(corpus.audio_path(u), u.audio)
        e = by_audio.setdefault(stamp, [u.audio, [], stamp, float(u.duration)])
        e[1].append(u.id)
    plan = _plan([tuple(v) for v in by_audio.values()], cfg, max(1, int(jobs)), shard_mb)
    n_utts = sum(len(ids) for s in plan for _, ids, _ in s)
    done = 0
    bar = progress(total=n_utts, desc="features", unit="utt", enabled=progress_bar)
    try:
        if jobs <= 1 or len(plan) <= 1:
            with torch_threads(1):  # _extract_one sets 1 thread; the caller's count comes back afterwards
                for work in plan:
                    n = _extract_one(str(folder), str(corpus.root), work, cfg, threads=1)
                    done += n
                    bar.update(n)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with ProcessPoolExecutor(max_workers=int(jobs), mp_context=ctx) as ex:
                futs = [ex.submit(_extract_one, str(folder), str(corpus.root), work, cfg, 1) for work in plan]
                try:
                    for fut in as_completed(futs):
                        n = fut.result()
                        done += n
                        bar.update(n)
                except BaseException:
                    for fut in futs:
                        fut.cancel()
                    raise
    finally:
        bar.close()
    return done


# -- reading ---------------------------------------------------------------------------------------
class ShardedFeatureStore:
    """Features of a corpus's utterances, read lazily from shards.

    ``get(id)`` -> ``(n_mels, frames)`` float32 tensor (read from disk, CRC-checked);
    ``frames(id)`` -> int without reading. ``ids``: the utterances covered, in corpus order.
    Picklable (``DataLoader`` workers open their own file descriptors).
    """

    def __init__(self, folder: Path, n_mels: int, ids: list[str], shard_paths: list[Path],
                 shard: np.ndarray, offsets: np.ndarray, frames: np.ndarray, crc: np.ndarray,
                 data_offsets: list[int]):
        self.folder, self.n_mels = Path(folder), int(n_mels)
        self.ids = ids
        self.index = {u: i for i, u in enumerate(ids)}
        self.shard_paths = [Path(p) for p in shard_paths]
        self._shard, self._offsets, self._frames, self._crc = shard, offsets, frames, crc
        self._data_offsets = list(data_offsets)
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()

    # compatibility with the in-memory FeatureStore
    @property
    def lengths(self) -> torch.Tensor:
        return torch.from_numpy(self._frames.astype(np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self.index

    def frames(self, utt_id: str) -> int:
        return int(self._frames[self.index[utt_id]])

    def _fd(self, s: int) -> int:
        if self._pid != os.getpid():  # forked: descriptors are shared with the parent, open our own
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(s)
        if fd is None:
            if len(self._fds) >= MAX_OPEN:  # stay far below the descriptor limit (960 h: ~3500 shards)
                self.close()
            try:
                fd = os.open(self.shard_paths[s], os.O_RDONLY)
            except OSError as e:
                raise ShardError(f"{self.shard_paths[s]}: feature shard unreadable ({e.strerror}); "
                                 f"run `toposcope features --repair` (or load_features(..., repair=True))") from None
            self._fds[s] = fd
        return fd

    def get(self, utt_id: str) -> torch.Tensor:
        """``(n_mels, frames)`` float32 features of one utterance, read from its shard."""
        i = self.index[utt_id]
        s, off, n = int(self._shard[i]), int(self._offsets[i]), int(self._frames[i])
        nbytes = n * self.n_mels * _DTYPE.itemsize
        buf = os.pread(self._fd(s), nbytes, self._data_offsets[s] + off * _DTYPE.itemsize)
        if len(buf) != nbytes or zlib.crc32(buf) != int(self._crc[i]):
            why = "truncated" if len(buf) != nbytes else "corrupt (CRC mismatch)"
            raise ShardError(f"{self.shard_paths[s]}: feature shard {why} at utterance {utt_id!r}; run "
                             f"`toposcope features --repair` (or load_features(..., repair=True)) to recompute it")
        arr = np.frombuffer(bytearray(buf), dtype=_DTYPE).reshape(self.n_mels, n)
        return torch.from_numpy(arr)

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = {}

    def __del__(self):  # pragma: no cover - best effort
        try:
            if self._pid == os.getpid():
                self.close()
        except Exception:
            pass

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_fds"], d["_pid"] = {}, -1
        d.pop("index", None)
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self.index = {u: i for i, u in enumerate(self.ids)}


def _check_blocks(npy: Path, start: int, idx: dict) -> str | None:
    """CRC-check every block of a shard (reads the whole file); a message for the first bad one."""
    seen = set()
    with open(npy, "rb") as f:
        for uid, off, n, crc in zip(idx["ids"].tolist(), idx["offsets"].tolist(), idx["frames"].tolist(),
                                    idx["crc"].tolist()):
            if off in seen:
                continue
            seen.add(off)
            nbytes = n * int(idx["n_mels"]) * _DTYPE.itemsize
            f.seek(start + off * _DTYPE.itemsize)
            buf = f.read(nbytes)
            if len(buf) != nbytes or zlib.crc32(buf) != crc:
                return f"feature shard corrupt (CRC mismatch at utterance {uid!r})"
    return None


def _read_indices(folder: Path, n_mels: int, repair: bool) -> tuple[list[Path], list[dict], list[int], list[str]]:
    """Load every shard index; check each shard's size and header. Returns (paths, indices, data
    offsets, deleted) — bad shards raise :class:`ShardError` or, with ``repair``, are deleted."""
    paths, indices, data_offsets, deleted = [], [], [], []
    if repair:  # only on request: another process may be writing a shard right now
        remove_stale_temp(folder)
        for npy in sorted(folder.glob("shard-*.npy")):
            if not npy.with_name(npy.stem + ".index.npz").exists():  # interrupted: data without an index
                npy.unlink(missing_ok=True)
    for idx_path in sorted(folder.glob("shard-*.index.npz")):
        npy = idx_path.with_name(idx_path.name[:-len(".index.npz")] + ".npy")
        problem = None
        try:
            with np.load(idx_path, allow_pickle=False) as z:
                idx = {k: z[k] for k in ("ids", "stamps", "offsets", "frames", "crc", "n_mels", "elements")}
        except Exception as e:
            problem, where = f"unreadable shard index ({type(e).__name__}: {e})", idx_path
        else:
            where = npy
            if int(idx["n_mels"]) != n_mels:
                problem = f"shard holds {int(idx['n_mels'])} mel bins, the config {n_mels}"
            elif not npy.exists():
                problem = "feature shard missing"
            else:
                try:
                    start, shape, dtype = _npy_header_len(npy)
                except Exception as e:
                    problem = f"feature shard has no valid .npy header ({type(e).__name__}: {e})"
                else:
                    want = start + int(idx["elements"]) * _DTYPE.itemsize
                    have = npy.stat().st_size
                    if dtype != _DTYPE or shape != (int(idx["elements"]),):
                        problem = f"feature shard holds {dtype}{shape}, its index says float32({int(idx['elements'])},)"
                    elif have != want:
                        problem = f"feature shard truncated ({have} of {want} bytes)"
                    elif repair:
                        problem = _check_blocks(npy, start, idx)
        if problem is not None:
            if not repair:
                raise ShardError(f"{where}: {problem}; run `toposcope features --repair` "
                                 f"(or load_features(..., repair=True)) to recompute it")
            npy.unlink(missing_ok=True)
            idx_path.unlink(missing_ok=True)
            deleted.append(str(where))
            continue
        paths.append(npy)
        indices.append(idx)
        data_offsets.append(start)
    return paths, indices, data_offsets, deleted


def _extraction_lock(folder: Path) -> int:
    """Block until this process holds ``folder/.extract.lock`` (``fcntl.flock``): one writer at a time, so
    two trainings on one corpus never extract the same utterances twice or clean up each other's files.
    Returns the descriptor; closing it releases the lock (the kernel does so if the process dies)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".extract.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _match(folder: Path, utts: list, corpus, cfg, repair: bool):
    """``(entry, paths, indices, data_offsets)``: for every utterance whose features the folder holds
    (matching audio stamp, or a block of the same audio file), ``entry[id] = (shard, row)``."""
    if folder.exists():
        paths, indices, data_offsets, deleted = _read_indices(folder, cfg.n_mels, repair)
    else:
        paths, indices, data_offsets, deleted = [], [], [], []
    if deleted:
        print(f"toposcope: removed {len(deleted)} bad feature shard(s), recomputing: {', '.join(deleted)}",
              file=sys.stderr)
    entry: dict[str, tuple[int, int]] = {}  # id -> (shard, row), the one whose stamp matches
    by_stamp: dict[str, tuple[int, int]] = {}  # the same audio file (path, size, mtime): the same block
    root, by_file = str(corpus.root), {}  # one stat per audio file
    for u in utts:
        if u.audio not in by_file:
            by_file[u.audio] = audio_stamp(os.path.join(root, u.audio), u.audio)
    stamps = {u.id: by_file[u.audio] for u in utts}
    for s, idx in enumerate(indices):
        for r, (uid, st) in enumerate(zip(idx["ids"].tolist(), idx["stamps"].tolist())):
            by_stamp[st] = (s, r)
            if stamps.get(uid) == st:
                entry[uid] = (s, r)
    for u in utts:
        if u.id not in entry and not stamps[u.id].endswith(":missing") and stamps[u.id] in by_stamp:
            entry[u.id] = by_stamp[stamps[u.id]]
    return entry, paths, indices, data_offsets


def open_store(folder, corpus, utterances, cfg, *, jobs: int = 1, repair: bool = False,
               shard_mb: float = SHARD_MB, progress_bar: bool = True, extract_missing: bool = True
               ) -> ShardedFeatureStore:
    """The store of ``utterances``: reuse matching entries, extract the rest, check every shard.

    ``extract_missing=False`` raises a :class:`ShardError` listing what is missing instead (used by
    processes that must not write, e.g. non-zero DDP ranks).
    """
    folder = Path(folder)
    utts = list(utterances)
    lock = None  # the folder's extraction lock, taken before writing (or repairing) anything
    try:
        if repair:
            lock = _extraction_lock(folder)
        for _ in range(3):  # read; (lock and re-read); extract what is missing and read again
            entry, paths, indices, data_offsets = _match(folder, utts, corpus, cfg, repair)
            missing = [u for u in utts if u.id not in entry]
            if not missing:
                break
            if not extract_missing:
                raise ShardError(f"{folder}: no features for {len(missing)} utterance(s) (e.g. {missing[0].id!r}); "
                                 f"extract them first (`toposcope features`)")
            if lock is None:  # another process may be extracting into this folder: wait, then look again
                lock = _extraction_lock(folder)
                continue
            write_json_atomic(folder / "config.json", {"format": FORMAT_VERSION, **asdict(cfg)})
            extract(folder, corpus, missing, cfg, jobs=jobs, shard_mb=shard_mb, progress_bar=progress_bar)
        if missing:
            raise ShardError(f"{folder}: features of {len(missing)} utterance(s) still missing after extraction "
                             f"(e.g. {missing[0].id!r})")
    finally:
        if lock is not None:
            os.close(lock)  # releases the flock
    n = len(utts)
    shard = np.empty(n, np.int32)
    offsets, frames = np.empty(n, np.int64), np.empty(n, np.int64)
    crc = np.empty(n, np.uint32)
    for i, u in enumerate(utts):
        s, r = entry[u.id]
        idx = indices[s]
        shard[i], offsets[i], frames[i], crc[i] = s, idx["offsets"][r], idx["frames"][r], idx["crc"][r]
    return ShardedFeatureStore(folder, cfg.n_mels, [u.id for u in utts], paths, shard, offsets, frames, crc,
                               data_offsets)


def verify_store(store: ShardedFeatureStore, *, progress_bar: bool = True) -> list[str]:
    """Read every utterance once (CRC-checked); returns the problems found (empty when all is well)."""
    problems = []
    for uid in progress(store.ids, desc="verify", unit="utt", enabled=progress_bar):
        try:
            store.get(uid)
        except ShardError as e:
            problems.append(str(e))
    return problems
