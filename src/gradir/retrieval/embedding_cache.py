"""A persistent cache of text embeddings: one memory-mapped float32 file per encoder.

Each (model fingerprint, encoding settings) namespace is a folder holding

- ``vectors.f32``: the vectors, one row of ``dim`` float32 after another, only ever
  appended to; read through ``numpy.memmap``, so reading a million vectors copies
  nothing into the process' own memory and the page cache can drop them;
- ``rows.sqlite``: text hash (BLAKE2, 16 bytes) → row number, plus the width.

Appending is crash-safe: the rows are written and ``fsync``-ed first, their index
entries committed after in one SQLite transaction, so a crash leaves at worst some
unindexed rows (unused space) and a torn last row, which the next append writes over. An
exclusive ``flock`` on ``append.lock`` orders appends from several processes; readers
need no lock (SQLite's WAL mode lets them read while one writes).

A row costs ``4·dim`` bytes plus about 40 bytes of index, against about 2 KB when each
384-dimensional vector was a SQLite row of its own; and a collection encoded in one go
occupies one contiguous block of rows, which :meth:`EmbeddingCache.block_of` hands to
FAISS as a view of the file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_LOOKUP_CHUNK = 900  # below SQLite's default limit on bound parameters
_DTYPE = np.dtype(np.float32)


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class EmbeddingCache:
    """Vectors of one model under one set of encoding settings, keyed by text hash."""

    def __init__(self, directory: Path | str, namespace: str):
        self.folder = Path(directory) / "embeddings" / namespace
        self.folder.mkdir(parents=True, exist_ok=True)
        self.vectors_path = self.folder / "vectors.f32"
        self.vectors_path.touch(exist_ok=True)
        self._db = sqlite3.connect(self.folder / "rows.sqlite", timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS rows (key BLOB PRIMARY KEY, row INTEGER NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self._db.commit()
        self._map: np.memmap | None = None

    @property
    def dim(self) -> int | None:
        """The vectors' width, known once the first vector is stored."""
        found = self._db.execute("SELECT value FROM meta WHERE name = 'dim'").fetchone()
        return None if found is None else int(found[0])

    def rows_of(self, keys: Sequence[bytes]) -> np.ndarray:
        """The row of each key (int64), −1 where the key has no vector."""
        slot: dict[bytes, int] = {}
        inverse = np.fromiter((slot.setdefault(key, len(slot)) for key in keys), dtype=np.int64, count=len(keys))
        unique = list(slot)
        found = np.full(len(unique), -1, dtype=np.int64)
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, row in self._db.execute(f"SELECT key, row FROM rows WHERE key IN ({marks})", chunk):
                found[slot[key]] = row
        return found[inverse]

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
        """Append vectors and then index them: a crash leaves them all indexed, or none."""
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        if not keys:
            return
        block = np.ascontiguousarray(vectors, dtype=_DTYPE)
        with open(self.folder / "append.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            dim = self.dim
            if dim is None:
                dim = block.shape[1]
                with self._db:
                    self._db.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('dim', ?)", (dim,))
            if block.shape[1] != dim:
                raise ValueError(f"vectors of width {block.shape[1]} in a cache of width {dim} ({self.folder})")
            row_bytes = dim * _DTYPE.itemsize
            with open(self.vectors_path, "r+b") as file:
                first = os.fstat(file.fileno()).st_size // row_bytes  # a torn row from a crash is overwritten
                file.seek(first * row_bytes)
                file.write(block.tobytes())
                file.truncate()
                file.flush()
                os.fsync(file.fileno())
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO rows (key, row) VALUES (?, ?)",
                                     [(key, first + i) for i, key in enumerate(keys)])

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
        return self._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]

    def close(self) -> None:
        self.unmap()
        self._db.close()
