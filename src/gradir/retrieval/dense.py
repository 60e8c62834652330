"""Exact dense search: inner product on unit vectors (cosine) with a FAISS flat index."""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

from gradir.retrieval.run import Run

_QUERY_BATCH = 1024


class DenseIndex:
    """An exact inner-product index over unit-length document vectors.

    FAISS' flat index computes the query-document products in blocks, so memory
    stays bounded by the index itself plus one block of scores, and search uses
    every core.
    """

    def __init__(self, doc_ids: Sequence[str], doc_vectors: np.ndarray):
        if len(doc_ids) != len(doc_vectors):
            raise ValueError(f"{len(doc_ids)} ids for {len(doc_vectors)} vectors")
        self.doc_ids = list(doc_ids)
        vectors = np.ascontiguousarray(doc_vectors, dtype=np.float32)
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)

    def search(self, query_ids: Sequence[str], query_vectors: np.ndarray, top_k: int) -> Run:
        """The ``top_k`` documents of each query with their cosine scores."""
        k = min(top_k, len(self.doc_ids))
        vectors = np.ascontiguousarray(query_vectors, dtype=np.float32)
        run: Run = {}
        for start in range(0, len(query_ids), _QUERY_BATCH):
            scores, indices = self.index.search(vectors[start : start + _QUERY_BATCH], k)
            for offset, (row_scores, row_indices) in enumerate(zip(scores, indices)):
                run[query_ids[start + offset]] = {
                    self.doc_ids[i]: float(s) for s, i in zip(row_scores, row_indices) if i >= 0
                }
        return run
