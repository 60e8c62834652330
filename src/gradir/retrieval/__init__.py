"""Search: exact dense search (FAISS), BM25 (bm25s) and reciprocal-rank fusion."""

from gradir.retrieval.bm25 import BM25Index
from gradir.retrieval.dense import DenseIndex
from gradir.retrieval.fusion import reciprocal_rank_fusion
from gradir.retrieval.run import Run, top_ranked

__all__ = ["BM25Index", "DenseIndex", "Run", "reciprocal_rank_fusion", "top_ranked"]
