"""A persistent cache of text embeddings: two append-only files per encoder.

Each (model fingerprint, encoding settings) namespace is a folder holding

- ``vectors.f32``: the vectors, one row of ``dim`` float32 after another; read through
  ``numpy.memmap``, so reading a million vectors copies nothing into the process' own
  memory and the page cache can drop them;
- ``keys.b16``: row i's key, the BLAKE2b hash of its text (16 bytes, :func:`text_key`);
- ``dim``: the vectors' width, written once.

Lookups go through a sorted copy of the keys held in memory (24 bytes per vector with its
row number: 24 MB for a million), built from ``keys.b16`` the first time and rebuilt when
many rows have been appended since; fewer wait in a small dictionary. Appending and
looking up both cost time in proportion to the vectors concerned. (Until 2026-12-05 the
index was a SQLite table keyed by hash. Once it outgrows memory, a B-tree keyed by random
hashes rewrites about one page per new key, so appending a million vectors took 32× the
time of a hundred thousand; see ``benchmarks/RESULTS.md``. A folder that has
``rows.sqlite`` and no ``keys.b16`` is converted the first time it is opened.)

Appending is crash-safe: the vectors are written and ``fsync``-ed first, their keys
after (one ``fsync`` per append), and a row exists once its key is written. A crash leaves at worst vectors without
keys and a torn last row, which the next append writes over; rows with keys are never
written again. An exclusive ``flock`` on ``append.lock`` orders appends from several
processes; readers take no lock (they see whole keys only, whose vectors are already
on disk).

A row costs ``4·dim + 16`` bytes on disk. A collection encoded in one go occupies one
contiguous block of rows, which :meth:`EmbeddingCache.block_of` hands to FAISS as a view
of the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from gradir.atomic import atomic_write, write_text_atomic

_DTYPE = np.dtype(np.float32)
KEY_BYTES = 16
_KEY_DTYPE = np.dtype(f"S{KEY_BYTES}")  # fixed-width bytes: sorted and compared whole
_MIN_REBUILD = 65_536  # appended keys kept in a dictionary before the sorted copy is rebuilt


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=KEY_BYTES).digest()


class EmbeddingCache:
    """Vectors of one model under one set of encoding settings, keyed by text hash (:func:`text_key`)."""

    def __init__(self, directory: Path | str, namespace: str):
        self.folder = Path(directory) / "embeddings" / namespace
        self.folder.mkdir(parents=True, exist_ok=True)
        self.vectors_path = self.folder / "vectors.f32"
        self.keys_path = self.folder / "keys.b16"
        self._dim_path = self.folder / "dim"
        self._map: np.memmap | None = None
        self._sorted_keys = np.zeros(0, dtype=_KEY_DTYPE)
        self._sorted_rows = np.zeros(0, dtype=np.int64)
        self._recent: dict[bytes, int] = {}  # keys read after the sorted copy was built
        self._keys_read = 0  # rows of keys.b16 in the sorted copy or in _recent
        with self._append_lock():
            if not self.keys_path.exists() and (self.folder / "rows.sqlite").exists():
                self._convert_sqlite_index()
            self.vectors_path.touch(exist_ok=True)
            self.keys_path.touch(exist_ok=True)

    @property
    def dim(self) -> int | None:
        """The vectors' width, known once the first vector is stored."""
        try:
            return int(self._dim_path.read_text())
        except FileNotFoundError:
            return None

    def rows_of(self, keys: Sequence[bytes]) -> np.ndarray:
        """The row of each key (int64), −1 where the key has no vector."""
        self._read_new_keys()
        wanted = _as_key_array(keys)
        found = np.full(len(wanted), -1, dtype=np.int64)
        if len(self._sorted_keys):
            # Searched in sorted order: each search starts near the last one (half the time of random order).
            order = np.argsort(wanted, kind="stable")
            at = np.empty(len(wanted), dtype=np.int64)
            at[order] = np.searchsorted(self._sorted_keys, wanted[order])
            np.minimum(at, len(self._sorted_keys) - 1, out=at)
            hit = self._sorted_keys[at] == wanted
            found[hit] = self._sorted_rows[at[hit]]
        if self._recent:
            for i in np.flatnonzero(found < 0):
                found[i] = self._recent.get(keys[i], -1)
        return found

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """A copy of the given rows (all must exist), in the order given."""
        if len(rows) == 0:
            return np.zeros((0, self.dim or 0), dtype=_DTYPE)
        return np.asarray(self._mapped(int(rows.max()) + 1)[rows])

    def block_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """When ``rows`` are a permutation of one contiguous block: (read-only view of the block, order).

        ``order[i]`` is the position in ``rows`` whose vector is the block's row i. None
        when the rows are not one block (repeated texts, or vectors stored at other
        times): then :meth:`vectors` copies them.
        """
        if len(rows) == 0 or rows.min() < 0:
            return None
        first, last = int(rows.min()), int(rows.max())
        if last - first + 1 != len(rows):
            return None
        order = np.full(len(rows), -1, dtype=np.int64)
        order[rows - first] = np.arange(len(rows))
        if (order < 0).any():
            return None
        return self._mapped(last + 1)[first : last + 1], order

    def count_cached(self, keys: Sequence[bytes]) -> int:
        """How many of ``keys`` have a vector (their vectors are not read)."""
        return int((self.rows_of(keys) >= 0).sum())

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Append vectors and then their keys: a crash leaves each row with its key, or unused."""
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        if not keys:
            return
        key_bytes = _as_key_array(keys).tobytes()
        block = np.ascontiguousarray(vectors, dtype=_DTYPE)
        with self._append_lock():
            dim = self.dim
            if dim is None:
                dim = block.shape[1]
                write_text_atomic(self._dim_path, str(dim))
            if block.shape[1] != dim:
                raise ValueError(f"vectors of width {block.shape[1]} in a cache of width {dim} ({self.folder})")
            row_bytes = dim * _DTYPE.itemsize
            # Rows past the last whole key (a crash's unkeyed vectors, a torn row) are written over.
            first = min(self.keys_path.stat().st_size // KEY_BYTES, self.vectors_path.stat().st_size // row_bytes)
            _write_at(self.vectors_path, first * row_bytes, block.tobytes(), durable=True)
            # Not fsync-ed: a key lost in a crash leaves its row unkeyed (written over by the next append),
            # while a key that reaches the disk always finds its vector there before it.
            _write_at(self.keys_path, first * KEY_BYTES, key_bytes, durable=False)

    def _read_new_keys(self) -> None:
        """Bring the in-memory index up to the keys on disk (appended by this process or another)."""
        on_disk = self.keys_path.stat().st_size // KEY_BYTES
        new = on_disk - self._keys_read
        if new <= 0:
            return
        if new + len(self._recent) >= max(_MIN_REBUILD, len(self._sorted_keys) // 4):
            keys = np.fromfile(self.keys_path, dtype=_KEY_DTYPE, count=on_disk)
            order = np.argsort(keys, kind="stable")
            self._sorted_keys, self._sorted_rows, self._recent = keys[order], order.astype(np.int64), {}
        else:
            with open(self.keys_path, "rb") as file:
                file.seek(self._keys_read * KEY_BYTES)
                tail = file.read(new * KEY_BYTES)
            for i in range(new):
                self._recent.setdefault(tail[i * KEY_BYTES : (i + 1) * KEY_BYTES], self._keys_read + i)
        self._keys_read = on_disk

    def _convert_sqlite_index(self) -> None:
        """Write ``keys.b16`` from the SQLite index of caches made before 2026-12-05, then drop it.

        Rows the old index never named (a crash's unindexed rows) get a key of zeros, which
        no text hashes to in practice.
        """
        old = self.folder / "rows.sqlite"
        db = sqlite3.connect(old)
        try:
            dim_row = db.execute("SELECT value FROM meta WHERE name = 'dim'").fetchone()
            indexed = db.execute("SELECT key, row FROM rows").fetchall() if dim_row else []
        finally:
            db.close()
        if dim_row:
            dim = int(dim_row[0])
            rows = self.vectors_path.stat().st_size // (dim * _DTYPE.itemsize) if self.vectors_path.exists() else 0
            keys = np.zeros(rows, dtype=_KEY_DTYPE)
            for key, row in indexed:
                if row < rows and len(key) == KEY_BYTES:
                    keys[row] = key
            with atomic_write(self.keys_path, "wb") as file:
                file.write(keys.tobytes())
            write_text_atomic(self._dim_path, str(dim))
        for leftover in (old, old.with_name("rows.sqlite-wal"), old.with_name("rows.sqlite-shm")):
            leftover.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _append_lock(self) -> Iterator[None]:
        """An exclusive ``flock`` on ``append.lock`` for the block (closing the file releases it)."""
        with open(self.folder / "append.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _mapped(self, rows_needed: int) -> np.memmap:
        """The file as a read-only (rows × dim) array, mapped again when it has grown past ``rows_needed``."""
        if self._map is None or len(self._map) < rows_needed:
            dim = self.dim or 0
            rows = self.vectors_path.stat().st_size // (dim * _DTYPE.itemsize) if dim else 0
            if rows < rows_needed:
                raise RuntimeError(f"{self.vectors_path} holds {rows} rows; row {rows_needed - 1} was asked for")
            self._map = np.memmap(self.vectors_path, dtype=_DTYPE, mode="r", shape=(rows, dim))
        return self._map

    def unmap(self) -> None:
        """Let go of the file's mapping (arrays handed out keep theirs): its pages stop counting as this process' memory."""
        self._map = None

    def __len__(self) -> int:
        """Rows stored (a text stored twice by two processes at once counts twice)."""
        return self.keys_path.stat().st_size // KEY_BYTES

    def close(self) -> None:
        self.unmap()


def _as_key_array(keys: Sequence[bytes]) -> np.ndarray:
    if any(len(key) != KEY_BYTES for key in keys):
        raise ValueError(f"cache keys are {KEY_BYTES}-byte text hashes (text_key)")
    return np.frombuffer(b"".join(keys), dtype=_KEY_DTYPE)


def _write_at(path: Path, offset: int, data: bytes, *, durable: bool) -> None:
    """Write ``data`` at ``offset`` and cut the file after it; ``durable``: ``fsync`` before returning."""
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)
        file.truncate()
        if durable:
            file.flush()
            os.fsync(file.fileno())

