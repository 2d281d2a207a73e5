"""One backbone's embeddings of a pool: memory-mapped rows aligned with item ids, resumable.

A store is a folder:

``meta.json``
    Backbone identity (name, weights sha256, recipe), ``dim`` and ``dtype``; written once.
``ids.i64``
    Item id of each row, int64, append-only.
``vectors.bin``
    Row-major (rows, dim) array of ``dtype`` holding L2-normalised embeddings.
``done.u8``
    One byte per row: 1 once the row's vector is on disk.

Rows are written with ``pwrite`` and synced before their done bytes are written and synced,
so a process killed at any moment leaves every row marked done with its vector in place;
a rerun embeds only the rows not marked. Files grow before new ids are appended, so a
reader that sees an id always finds its bytes. One writer at a time (a ``lockf`` lock).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

FORMAT = "banana-embeddings/1"
DTYPES = ("float16", "float32")
LOCK_POLL_SECONDS = 0.2  # how often a waiting writer tries the lock again


class StoreBusy(RuntimeError):
    """Another process is writing the same store."""


class EmbeddingStore:
    """Read (and, opened for writing, grow and fill) an embedding store.

    Use :meth:`open_for_writing` or :meth:`open_for_reading`, not the constructor.

    Attributes
    ----------
    folder : Path
    meta : dict
        Contents of ``meta.json``.
    dim : int
    dtype : numpy.dtype
    """

    def __init__(self, folder, meta, lock_handle=None):
        self.folder, self.meta, self._lock = Path(folder), meta, lock_handle
        self.dim, self.dtype = int(meta["dim"]), np.dtype(meta["dtype"])

    @classmethod
    def open_for_writing(cls, folder, *, backbone, dim, dtype="float16", wait_seconds=0.0, on_wait=None):
        """Create the store, or open an existing one made with the same backbone, and lock it.

        Parameters
        ----------
        folder : path-like
        backbone : dict
            Backbone identity, as from ``Backbone.describe()``; must hold ``weights_sha256``.
        dim : int
        dtype : {"float16", "float32"}
        wait_seconds : float
            How long to wait for another process's writer lock (0: fail at once).
        on_wait : callable, optional
            Called once, with no arguments, when the lock is held elsewhere and this call waits.

        Raises
        ------
        ValueError
            When the folder holds embeddings of another backbone, dim or dtype.
        StoreBusy
            When another process holds the store open for writing (after ``wait_seconds``), or
            this process does.
        """
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lock = _lock(folder, wait_seconds, on_wait)
        try:
            meta = dict(format=FORMAT, backbone=backbone, dim=int(dim), dtype=dtype)
            meta_path = folder / "meta.json"
            if meta_path.exists():
                found = _read_meta(folder)
                if (found["backbone"].get("weights_sha256"), found["dim"], found["dtype"]) != (
                    backbone["weights_sha256"],
                    int(dim),
                    dtype,
                ):
                    raise ValueError(
                        f"{folder} holds embeddings of {found['backbone'].get('name')} (weights "
                        f"{found['backbone'].get('weights_sha256', '?')[:12]}, dim {found['dim']}, "
                        f"{found['dtype']}); they never mix with {backbone.get('name')} (weights "
                        f"{backbone['weights_sha256'][:12]}, dim {dim}, {dtype}). Fix: use another folder."
                    )
                meta = found
            else:
                _write_atomically(meta_path, json.dumps(meta, indent=2).encode())
            store = cls(folder, meta, lock)
            store._repair_tail()
        except BaseException:
            _unlock(lock)  # a failed open (another backbone's store, a full disk) holds nothing
            raise
        return store

    @classmethod
    def open_for_reading(cls, folder):
        """Open a store without locking it; safe while a writer fills it.

        Raises
        ------
        FileNotFoundError
            When the folder holds no store.
        """
        return cls(folder, _read_meta(Path(folder)))

    def close(self):
        """Release the writer's lock."""
        if self._lock is not None:
            _unlock(self._lock)
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- reading ------------------------------------------------------------

    @property
    def ids(self):
        """Item id of each row, ndarray of shape (rows,), int64."""
        path = self.folder / "ids.i64"
        if not path.exists():
            return np.zeros(0, np.int64)
        data = path.read_bytes()
        return np.frombuffer(data[: len(data) // 8 * 8], dtype=np.int64).copy()

    def done_mask(self, rows=None):
        """Whether each row's vector is written, ndarray of shape (rows,), bool."""
        rows = len(self.ids) if rows is None else rows
        path = self.folder / "done.u8"
        data = path.read_bytes()[:rows] if path.exists() else b""
        return np.frombuffer(data.ljust(rows, b"\0"), dtype=np.uint8).astype(bool)

    def vectors(self):
        """Memory map of all rows, ndarray of shape (rows, dim), read-only; rows not done hold zeros."""
        rows = len(self.ids)
        if rows == 0:
            return np.zeros((0, self.dim), self.dtype)
        return np.memmap(self.folder / "vectors.bin", dtype=self.dtype, mode="r", shape=(rows, self.dim))

    def done(self):
        """Item ids and float32 vectors of every row that is done, in row order.

        Returns
        -------
        ids : ndarray of shape (n,), int64
        vectors : ndarray of shape (n, dim), float32
        """
        ids = self.ids
        mask = self.done_mask(len(ids))
        return ids[mask], np.asarray(self.vectors()[mask], dtype=np.float32)

    # --- writing ------------------------------------------------------------

    def add_ids(self, item_ids):
        """Append rows for the item ids not in the store yet; return how many were added."""
        self._require_writer()
        known = self.ids
        new = np.setdiff1d(np.asarray(item_ids, np.int64), known)
        if len(new) == 0:
            return 0
        rows = len(known) + len(new)
        for name, row_bytes in (("vectors.bin", self.dim * self.dtype.itemsize), ("done.u8", 1)):
            with open(self.folder / name, "ab") as handle:
                handle.truncate(rows * row_bytes)
                os.fsync(handle.fileno())
        with open(self.folder / "ids.i64", "ab") as handle:
            handle.write(new.tobytes())
            os.fsync(handle.fileno())
        return len(new)

    def write_rows(self, rows, vectors):
        """Write vectors to rows and then mark the rows done, both synced to disk.

        Parameters
        ----------
        rows : ndarray of shape (n,), int
        vectors : ndarray of shape (n, dim), any float dtype; stored as ``self.dtype``
        """
        self._require_writer()
        rows = np.asarray(rows, np.int64)
        if len(rows) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=self.dtype)
        if vectors.shape != (len(rows), self.dim):
            raise ValueError(f"vectors of shape {vectors.shape} for {len(rows)} rows of dim {self.dim}")
        order = np.argsort(rows)
        rows, vectors = rows[order], vectors[order]
        row_bytes = self.dim * self.dtype.itemsize
        vectors_fd = os.open(self.folder / "vectors.bin", os.O_WRONLY)
        done_fd = os.open(self.folder / "done.u8", os.O_WRONLY)
        try:
            for start, stop in _runs(rows):
                os.pwrite(vectors_fd, vectors[start:stop].tobytes(), int(rows[start]) * row_bytes)
            os.fdatasync(vectors_fd)
            for start, stop in _runs(rows):
                os.pwrite(done_fd, b"\1" * (stop - start), int(rows[start]))
            os.fdatasync(done_fd)
        finally:
            os.close(vectors_fd)
            os.close(done_fd)

    def _require_writer(self):
        if self._lock is None:
            raise RuntimeError("store opened for reading; use EmbeddingStore.open_for_writing to change it")

    def _repair_tail(self):
        """Cut a torn last id (a crash mid-append) so the next append stays aligned."""
        path = self.folder / "ids.i64"
        if path.exists() and path.stat().st_size % 8:
            with open(path, "ab") as handle:
                handle.truncate(path.stat().st_size // 8 * 8)


# lock file -> threading.Lock, held while a store of this process writes it
_WRITING_HERE: dict[str, threading.Lock] = {}
_WRITING_HERE_GUARD = threading.Lock()


def _lock(folder, wait_seconds=0.0, on_wait=None):
    """Take the store's writer lock: a thread lock within this process, then a POSIX record lock
    between processes, which forked DataLoader workers do not inherit (so a killed writer's
    orphaned workers never block the rerun). Both are polled, so that a wait ends after
    ``wait_seconds``."""
    path = os.path.realpath(folder / "lock")
    with _WRITING_HERE_GUARD:
        here = _WRITING_HERE.setdefault(path, threading.Lock())
    deadline, handle = time.monotonic() + wait_seconds, None
    while True:
        if handle is None and here.acquire(blocking=False):
            try:
                handle = open(path, "a")
            except OSError:
                here.release()  # or no writer of this process could ever take it again
                raise
        if handle is not None:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return handle
            except OSError:
                pass
        if time.monotonic() >= deadline:
            waited = f" (waited {wait_seconds:g} s)" if wait_seconds else ""
            if handle is None:
                raise StoreBusy(
                    f"this process is already writing {folder} (another store or thread){waited}; wait for it to finish"
                )
            _unlock(handle)
            raise StoreBusy(f"another process is writing {folder}{waited}; wait for it to finish")
        if on_wait is not None:
            on_wait()
            on_wait = None
        time.sleep(LOCK_POLL_SECONDS)


def _unlock(handle):
    handle.close()  # releases the record lock
    _WRITING_HERE[handle.name].release()


def _runs(sorted_rows):
    """(start, stop) positions of runs of consecutive row numbers."""
    breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
    edges = [0, *breaks.tolist(), len(sorted_rows)]
    return list(zip(edges[:-1], edges[1:]))


def _read_meta(folder):
    path = folder / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"{folder} holds no embeddings (no meta.json)")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def _write_atomically(path, data):
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # a failed write (a full disk) leaves no partial file
