"""Dense search: inner product on unit vectors (cosine) with FAISS, exact or approximate.

Exact search (FAISS' brute-force ``knn``, as ``IndexFlatIP`` searches) is the default and
what evaluation always uses. For
mining and filtering over large collections, two approximate indexes trade a little
recall for speed (:class:`ApproximateSearch`):

- ``hnsw``: a hierarchical navigable small-world graph (Malkov & Yashunin 2018), ``m``
  links per vector, ``ef_construction`` candidates while building, ``ef_search`` while
  searching (raised to k when smaller). No training; memory about (d·4 + m·8) bytes a vector.
- ``ivf``: an inverted file (k-means into ``ivf_lists`` cells, 0: 4·√N, at most N/39 so
  every cell has FAISS' minimum of training points); a query visits the ``nprobe``
  nearest cells.
- ``ivfpq``: the same cells, but each vector stored as a 4-bit product-quantisation code
  of its residual (``pq_subvectors`` codes of 4 bits; 0: one per 2 dimensions), scanned
  with FAISS' SIMD "fast scan" kernels (André et al. 2019), and the best
  ``refine_factor`` · k candidates re-scored exactly against the stored vectors
  (FAISS factory string ``IVF{lists},PQ{m}x4fsr,RFlat``). The scan reads 96 bytes a
  vector instead of 1,536 (384 dimensions), which is what makes probing many cells cheap;
  the exact re-scoring gives back exact scores and most of the recall PQ loses. Memory:
  the vectors once more plus the codes.

``nprobe`` 0 means the kind's default: 256 for ``ivf``, 512 for ``ivfpq`` (at 1M passages,
2026-12-02: recall@100 0.970 at 9.0× exact search's speed, one thread each; plain IVF at
256 keeps 0.955 but is barely faster than exact). Fewer than
624 vectors (39 per 4-bit code, FAISS' minimum to train the codebooks) cannot train an
``ivfpq`` index; such a collection is searched exactly, which at that size is also faster.

benchmarks/ann_recall.py measures their recall@100 against exact search and their speed.
The defaults are its 2026-11-24 figures (100k and 300k passages, 623 queries): HNSW at
``ef_search`` 512 keeps 0.93 / 0.92 of exact search's top 100 (128: 0.78 / 0.75), IVF at
``nprobe`` 256 0.975 / 0.967 (16: 0.64 / 0.69). At those sizes on 2 cores, exact search
of 623 queries took 0.4 / 0.9 s against 37 / 123 s to build the HNSW graph, so exact stays
the default: an approximate index pays only when many queries search millions of vectors.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

from gradir.retrieval.run import Run

_QUERY_BATCH = 1024
_PQ_MINIMUM_VECTORS = 39 * 16
IndexKind = Literal["exact", "hnsw", "ivf", "ivfpq"]
INDEX_KINDS: tuple[str, ...] = ("exact", "hnsw", "ivf", "ivfpq")


@dataclass(frozen=True, slots=True)
class ApproximateSearch:
    """Which FAISS index searches, and its parameters (see the module docstring)."""

    kind: IndexKind = "exact"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 512
    ivf_lists: int = 0
    nprobe: int = 0
    pq_subvectors: int = 0
    refine_factor: int = 8

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"unknown index '{self.kind}' (choose from {', '.join(INDEX_KINDS)})")

    def lists_for(self, size: int) -> int:
        """IVF cells for ``size`` vectors."""
        wanted = self.ivf_lists or round(4 * math.sqrt(size))
        return max(1, min(wanted, size // 39))

    def probes(self) -> int:
        """Cells a query visits (``nprobe``, or the kind's default when 0)."""
        return self.nprobe or (512 if self.kind == "ivfpq" else 256)

    def subvectors_for(self, dim: int) -> int:
        """PQ codes per vector for ``dim`` dimensions (0: one per 2 dimensions); must divide ``dim``."""
        wanted = self.pq_subvectors or max(1, dim // 2)
        if dim % wanted:
            raise ValueError(f"pq_subvectors {wanted} does not divide the {dim} dimensions")
        return wanted


EXACT = ApproximateSearch()


def build_approximate_index(vectors: np.ndarray, settings: ApproximateSearch) -> faiss.Index:
    """An HNSW or IVF inner-product index over ``vectors`` (float32, C-contiguous), built as ``settings`` says."""
    dim = vectors.shape[1]
    if settings.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.ef_construction
    elif settings.kind in ("ivf", "ivfpq"):
        lists = settings.lists_for(len(vectors))
        if settings.kind == "ivf":
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        else:
            factory = f"IVF{lists},PQ{settings.subvectors_for(dim)}x4fsr,RFlat"
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
    else:
        raise ValueError(f"'{settings.kind}' is not an approximate index")
    index.add(vectors)
    return index


class DenseIndex:
    """An inner-product index over unit-length document vectors.

    Exact search runs FAISS' brute-force ``knn`` (the search ``IndexFlatIP`` runs) on the
    vectors as given: a float32 C-contiguous array is searched in place, never copied into
    an index, so a million 384-dimensional vectors take 1.5 GB once, not twice. An
    approximate index holds its own copy and the array is not kept. Queries are searched
    in blocks, so memory stays bounded by the vectors plus one block of scores, and search
    uses every core. The search-time parameters (``ef_search``, ``nprobe``) are read from
    ``settings`` at each search, so one built index can be searched at several.
    """

    def __init__(self, doc_ids: Sequence[str], doc_vectors: np.ndarray, approximate: ApproximateSearch = EXACT):
        if len(doc_ids) != len(doc_vectors):
            raise ValueError(f"{len(doc_ids)} ids for {len(doc_vectors)} vectors")
        self.doc_ids = list(doc_ids)
        if approximate.kind == "ivfpq" and len(doc_ids) < _PQ_MINIMUM_VECTORS:
            approximate = EXACT
        self.settings = approximate
        vectors = np.ascontiguousarray(doc_vectors, dtype=np.float32)
        self._vectors = vectors if approximate.kind == "exact" else None
        self._index = None if approximate.kind == "exact" else build_approximate_index(vectors, approximate)

    def _search_block(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._index is None:
            return faiss.knn(vectors, self._vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
        return self._index.search(vectors, k)

    def drop_resident_pages(self) -> None:
        """Hand the resident pages of memory-mapped exact vectors back to the kernel (``madvise(MADV_DONTNEED)``).

        Exact search over the embedding cache's file touches every page of it: 1.5 GB of
        resident memory at a million 384-dimensional vectors, counted as this process' own
        while the index is kept for a later search. After this call they count no more; the
        next search reads them again from the page cache (or the file). The index stays
        valid. Vectors in the process' own memory, and approximate indexes, are left as they are.
        """
        mapping = self._vectors
        while isinstance(mapping, np.ndarray):
            mapping = mapping.base
        if isinstance(mapping, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            mapping.madvise(mmap.MADV_DONTNEED)

    def search(self, query_ids: Sequence[str], query_vectors: np.ndarray, top_k: int) -> Run:
        """The ``top_k`` documents of each query with their cosine scores (fewer when an approximate index finds fewer)."""
        k = min(top_k, len(self.doc_ids))
        if self.settings.kind == "hnsw":
            self._index.hnsw.efSearch = max(self.settings.ef_search, k)
        elif self.settings.kind in ("ivf", "ivfpq"):
            cells = faiss.extract_index_ivf(self._index)
            cells.nprobe = min(self.settings.probes(), cells.nlist)
        if self.settings.kind == "ivfpq":
            self._index.k_factor = self.settings.refine_factor
        vectors = np.ascontiguousarray(query_vectors, dtype=np.float32)
        run: Run = {}
        for start in range(0, len(query_ids), _QUERY_BATCH):
            scores, indices = self._search_block(vectors[start : start + _QUERY_BATCH], k)
            for offset, (row_scores, row_indices) in enumerate(zip(scores, indices)):
                run[query_ids[start + offset]] = {
                    self.doc_ids[i]: float(s) for s, i in zip(row_scores, row_indices) if i >= 0
                }
        return run
