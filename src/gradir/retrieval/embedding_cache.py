"""A persistent cache of text embeddings.

One SQLite file per (model fingerprint, encoding settings) holds one row per text:
the text's BLAKE2 hash and its vector as float32 bytes. SQLite gives atomic,
crash-safe commits and lets several processes share the cache (WAL mode), which a
folder of NumPy files would not.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

_LOOKUP_CHUNK = 900  # below SQLite's default limit on bound parameters


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class EmbeddingCache:
    """Vectors of one model under one set of encoding settings, keyed by text hash."""

    def __init__(self, directory: Path | str, namespace: str):
        self.path = Path(directory) / "embeddings" / f"{namespace}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
        self._db.commit()

    def iter_many(self, keys: Sequence[bytes]) -> Iterator[tuple[bytes, np.ndarray]]:
        """(key, vector) for each cached key among ``keys``, read in chunks (no table of all of them is built)."""
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = list(keys[start : start + _LOOKUP_CHUNK])
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk):
                yield key, np.frombuffer(blob, dtype=np.float32)

    def count_cached(self, keys: Sequence[bytes]) -> int:
        """How many of ``keys`` have a vector (their vectors are not read)."""
        total = 0
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = list(keys[start : start + _LOOKUP_CHUNK])
            marks = ",".join("?" * len(chunk))
            total += self._db.execute(f"SELECT COUNT(*) FROM vectors WHERE key IN ({marks})", chunk).fetchone()[0]
        return total

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store vectors in one transaction: all of them are cached, or none."""
        rows = [(key, np.ascontiguousarray(vec, dtype=np.float32).tobytes()) for key, vec in zip(keys, vectors)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

    def close(self) -> None:
        self._db.close()
