"""Retrieving for a set of queries over a collection: dense, BM25, or both fused."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from gradir.collections.records import Document, Query
from gradir.errors import GradirError
from gradir.cache_dir import default_cache_dir
from gradir.retrieval.bm25 import collection_index
from gradir.retrieval.dense import EXACT, ApproximateSearch
from gradir.retrieval.encoding import Encoder
from gradir.retrieval.fusion import reciprocal_rank_fusion
from gradir.retrieval.run import Run

Retriever = Literal["dense", "bm25", "hybrid"]
RETRIEVERS: tuple[str, ...] = ("dense", "bm25", "hybrid")


def search(
    documents: Mapping[str, Document],
    queries: Mapping[str, Query],
    retriever: str = "dense",
    *,
    encoder: Encoder | None = None,
    top_k: int = 100,
    approximate: ApproximateSearch = EXACT,
    cache_dir: Path | None = None,
) -> Run:
    """The ``top_k`` documents of each query. Hybrid fuses dense and BM25 with RRF.

    ``approximate`` chooses the dense index (:mod:`gradir.retrieval.dense`); exact by default.
    BM25's index is saved in ``cache_dir`` and reused for the same documents; None: the
    encoder's cache folder (not saved when its cache is off), or with no encoder the
    default one (``$GRADIR_CACHE_DIR``).
    """
    if retriever not in RETRIEVERS:
        raise GradirError(f"unknown retriever '{retriever}' (choose from {', '.join(RETRIEVERS)})")
    query_ids = list(queries)
    query_texts = [queries[q].text for q in query_ids]
    runs: list[Run] = []
    if retriever in ("dense", "hybrid"):
        encoder = encoder or Encoder()
        index = encoder.document_index(documents, approximate)
        runs.append(index.search(query_ids, encoder.encode_queries(query_texts), top_k))
        index.drop_resident_pages()  # kept for the next search, not resident in the work between
    if retriever in ("bm25", "hybrid"):
        cache = cache_dir or (default_cache_dir() if encoder is None else encoder.cache_root)
        runs.append(collection_index(documents, cache).search(query_ids, query_texts, top_k))
    return runs[0] if len(runs) == 1 else reciprocal_rank_fusion(runs, top_k=top_k)
