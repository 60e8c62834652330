"""Encoding texts with a sentence-transformers model, through the embedding cache.

Texts are de-duplicated, looked up in the cache, and only the missing ones are
encoded, longest first in chunks that are appended to the cache as they finish: a
second encoding of the same corpus reads vectors from disk without loading the
model, and an interrupted encoding resumes where it stopped. The cache is one
memory-mapped file per encoder (:mod:`gradir.retrieval.embedding_cache`).

The forward pass runs in PyTorch, ONNX Runtime or OpenVINO, in fp32 or int8
(:mod:`gradir.retrieval.runtimes`); backend and precision are part of the cache key, since an
int8 vector is not an fp32 vector.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gradir.cache_dir import default_cache_dir
from gradir.collections.records import Document
from gradir.console import progress
from gradir.models import model_fingerprint, resolve_model_path, set_token_limit
from gradir.precision import warn_if_emulated
from gradir.retrieval.dense import EXACT, ApproximateSearch, DenseIndex
from gradir.retrieval.embedding_cache import EmbeddingCache, text_key
from gradir.retrieval.runtimes import DEFAULT_BACKEND, DEFAULT_PRECISION, check_runtime, export_file, use_runtime

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_CHUNK = 512


class Encoder:
    """Normalised embeddings of queries and documents from one local model.

    Args:
        model: a local sentence-transformers directory; None for the default model.
        cache_dir: where the embedding cache lives; None for the default
            (``$GRADIR_CACHE_DIR`` or ``~/.cache/gradir``), False to disable caching.
        batch_size: texts per forward pass.
        max_seq_length: token limit; None keeps the model's own.
        query_prompt, document_prompt: prefixes some models expect (``"query: "``).
        device: torch device; None lets sentence-transformers choose.
        backend: ``torch``, ``onnx`` (ONNX Runtime) or ``openvino``: the runtime of the
            forward pass; the model is exported once per content fingerprint.
        precision: ``fp32``, ``bf16`` (torch only: bfloat16 autocast) or ``int8`` (onnx and openvino only).
        exports_dir: where runtime exports are kept; None: the cache folder (also when
            embeddings are not cached).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        cache_dir: Path | str | None | bool = None,
        batch_size: int = 32,
        max_seq_length: int | None = None,
        query_prompt: str = "",
        document_prompt: str = "",
        device: str | None = None,
        show_progress: bool = True,
        backend: str = DEFAULT_BACKEND,
        precision: str = DEFAULT_PRECISION,
        exports_dir: Path | str | None = None,
    ):
        check_runtime(backend, precision)
        warn_if_emulated(precision)
        self.model_path = resolve_model_path(model)
        self.backend = backend
        self.precision = precision
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.prompts = {"query": query_prompt, "document": document_prompt}
        self.device = device
        self.show_progress = show_progress
        self._model: SentenceTransformer | None = None
        self.encoded_count = 0
        self.cache_hits = 0
        self._cache: EmbeddingCache | None = None
        self._index: tuple[tuple[bytes, ApproximateSearch], DenseIndex] | None = None
        directory = default_cache_dir() if cache_dir in (None, True, False) else Path(cache_dir)
        self.exports_dir = Path(exports_dir) if exports_dir is not None else directory
        # The cache folder (None with caching off): embeddings, and the BM25 indexes searched beside them.
        self.cache_root: Path | None = None if cache_dir is False else directory
        if self.cache_root is not None:
            self._cache = EmbeddingCache(directory, self.cache_namespace())

    @cached_property
    def fingerprint(self) -> str:
        """The model's content hash, computed once: the cache key and the export both need it."""
        return model_fingerprint(self.model_path)

    def cache_namespace(self) -> str:
        """Model content fingerprint plus the settings that change vectors."""
        settings = (
            f"{self.fingerprint}|max_seq_length={self.max_seq_length}|normalized"
            f"|{self.backend}-{self.precision}"
        )
        return hashlib.blake2b(settings.encode(), digest_size=16).hexdigest()

    @property
    def model(self) -> "SentenceTransformer":
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_path), device=self.device, local_files_only=True)
            set_token_limit(self._model, self.max_seq_length)
            if self.backend != "torch":
                file = export_file(self._model, self.model_path, self.fingerprint, self.backend, self.precision, self.exports_dir)
                use_runtime(self._model, file, self.backend)
        return self._model

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts, kind="query")

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts, kind="document")

    def document_index(self, documents: Mapping[str, Document], approximate: ApproximateSearch = EXACT) -> DenseIndex:
        """The dense index of ``documents`` under this encoder, built once and reused.

        A pipeline run searches one collection with one encoder in several stages (the
        round-trip filter, mining, the grader check, the base evaluation): the index is
        built the first time and kept while the same document ids are searched with the
        same index settings. The encoder holds one index at a time. When the collection's
        vectors are one block of the embedding cache's file (a collection encoded in one
        go), exact search reads that block where it lies: no copy in the process' memory.
        """
        doc_ids = list(documents)
        key = (hashlib.blake2b("\n".join(doc_ids).encode(), digest_size=16).digest(), approximate)
        if self._index is None or self._index[0] != key:
            self._index = None  # the previous index's memory goes before the next one is built
            if self._cache is None:
                vectors = self.encode_documents([documents[d].full_text for d in doc_ids])
            else:
                rows = self._cached_rows(lambda i: documents[doc_ids[i]].full_text, len(doc_ids), "document")
                block = self._cache.block_of(rows)
                if block is None:
                    vectors = self._cache.vectors(rows)
                else:
                    vectors, order = block
                    doc_ids = [doc_ids[i] for i in order]
            self._index = (key, DenseIndex(doc_ids, vectors, approximate))
        return self._index[1]

    def release_index(self) -> None:
        """Free the index :meth:`document_index` holds (its vectors stay in the embedding cache), and unmap the cache file."""
        self._index = None
        if self._cache is not None:
            self._cache.unmap()

    def cached_count(self, texts: Sequence[str], kind: str = "document") -> int:
        """How many distinct ``texts`` already have a vector in the embedding cache (nothing is encoded)."""
        if self._cache is None:
            return 0
        keys = list(dict.fromkeys(text_key(self.prompts[kind] + t) for t in texts))
        return self._cache.count_cached(keys)

    def encode(self, texts: Sequence[str], kind: str = "document") -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in the order given.

        Only texts without a cached vector are encoded; a text repeated in ``texts`` is
        looked up and encoded once. The result is one array gathered from the cache
        file (or, with no cache, filled as the model's chunks come): no table of
        per-text vectors and no stacked copy.
        """
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension() or 0), dtype=np.float32)
        if self._cache is not None:
            return self._cache.vectors(self._cached_rows(lambda i: texts[i], len(texts), kind))
        prompt = self.prompts[kind]
        first_row: dict[bytes, int] = {}
        repeats: list[tuple[int, int]] = []  # (row, row of the text's first occurrence)
        for row, text in enumerate(texts):
            first = first_row.setdefault(text_key(prompt + text), row)
            if first != row:
                repeats.append((row, first))
        result = _Rows(len(texts))
        self._encode_missing(list(first_row), lambda key: prompt + texts[first_row[key]], kind,
                             lambda key, vector: result.put(first_row[key], vector))
        for row, source in repeats:
            result.array[row] = result.array[source]
        return result.array

    def _cached_rows(self, text_at: Callable[[int], str], count: int, kind: str) -> np.ndarray:
        """The cache row of each of ``count`` texts (``text_at(i)``), encoding and storing those not cached yet.

        Texts are read one at a time through ``text_at``, so a collection's texts are
        never all held at once: only their 16-byte keys.
        """
        assert self._cache is not None
        prompt = self.prompts[kind]
        keys = [text_key(prompt + text_at(i)) for i in range(count)]
        rows = self._cache.rows_of(keys)
        absent = np.flatnonzero(rows < 0)
        first_of: dict[bytes, int] = {}
        for i in absent:
            first_of.setdefault(keys[i], int(i))
        self.cache_hits += len(dict.fromkeys(keys)) - len(first_of)
        if first_of:
            self._encode_missing(list(first_of), lambda key: prompt + text_at(first_of[key]), kind, None)
            rows[absent] = self._cache.rows_of([keys[i] for i in absent])
        return rows

    def _encode_missing(self, missing: list[bytes], text_of: Callable[[bytes], str], kind: str,
                        store: Callable[[bytes, np.ndarray], None] | None) -> None:
        """Encode the texts of ``missing`` keys in chunks, appending each chunk to the cache and handing each vector to ``store``."""
        # Longest first, so each chunk's batches hold texts of similar length.
        missing = sorted(missing, key=lambda k: len(text_of(k)), reverse=True)
        with progress() as bar:
            task = bar.add_task("encoding " + ("queries" if kind == "query" else f"{kind}s"), total=len(missing), visible=self.show_progress)
            for start in range(0, len(missing), _CHUNK):
                chunk = missing[start : start + _CHUNK]
                embeddings = self._encode_chunk([text_of(k) for k in chunk])
                if self._cache is not None:
                    self._cache.put_many(chunk, embeddings)
                if store is not None:
                    for key, vector in zip(chunk, embeddings):
                        store(key, vector)
                self.encoded_count += len(chunk)
                bar.advance(task, len(chunk))

    def _encode_chunk(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors of ``texts``; under ``bf16`` encoded in bfloat16 autocast,
        then normalised in float32 (a vector normalised in bfloat16 is unit-length to 2⁻⁸ only)."""
        if self.precision != "bf16":
            return self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False).astype(np.float32, copy=False)
        import torch

        with torch.autocast(device_type=self.model.device.type, dtype=torch.bfloat16):
            vectors = self.model.encode(texts, batch_size=self.batch_size, convert_to_tensor=True,
                                        normalize_embeddings=False, show_progress_bar=False)
        return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu().numpy()


class _Rows:
    """A float32 array of ``count`` rows, allocated when the first vector tells its width."""

    def __init__(self, count: int):
        self.count = count
        self.array = np.zeros((0, 0), dtype=np.float32)

    def put(self, row: int, vector: np.ndarray) -> None:
        if self.array.shape[0] != self.count:
            self.array = np.empty((self.count, vector.shape[0]), dtype=np.float32)
        self.array[row] = vector
