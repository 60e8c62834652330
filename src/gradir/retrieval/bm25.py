"""BM25 with bm25s: sparse-matrix scoring, English stop words and Snowball stemming.

The defaults (k1 = 1.2, b = 0.75, Lucene's formula, stemming) follow the
Elasticsearch set-up of BEIR's BM25 baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import Stemmer

from gradir.retrieval.run import Run


class BM25Index:
    def __init__(
        self,
        doc_ids: Sequence[str],
        texts: Sequence[str],
        *,
        k1: float = 1.2,
        b: float = 0.75,
        language: str = "english",
    ):
        self.doc_ids = list(doc_ids)
        self.stemmer = Stemmer.Stemmer(language)
        self.stopwords = "en" if language == "english" else None
        tokens = bm25s.tokenize(list(texts), stopwords=self.stopwords, stemmer=self.stemmer, show_progress=False)
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.retriever.index(tokens, show_progress=False)

    def search(self, query_ids: Sequence[str], query_texts: Sequence[str], top_k: int) -> Run:
        k = min(top_k, len(self.doc_ids))
        tokens = bm25s.tokenize(list(query_texts), stopwords=self.stopwords, stemmer=self.stemmer, show_progress=False)
        indices, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        run: Run = {}
        for qid, row_indices, row_scores in zip(query_ids, indices, scores):
            # A query with no known term scores 0 everywhere: it retrieves nothing.
            run[qid] = {self.doc_ids[i]: float(s) for i, s in zip(row_indices, row_scores) if s > 0}
        return run
