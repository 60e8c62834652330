"""Mining candidates for each query: the documents a grader should judge.

For each query, the retriever's top ``top_k`` (dense with the base model, BM25, or both
fused), with ranks ``skip_top``..``top_k`` kept (as sentence-transformers'
``mine_hard_negatives`` samples ranks n..m). The source passage is kept (marked) or left
out. With dense scores, a candidate may be dropped when it scores too close to the
source passage: ``absolute_margin`` keeps s < s_source − margin, ``relative_margin``
keeps s < s_source · (1 − margin). Queries are searched in batches through FAISS, so
memory stays bounded by the index for 100k+ documents. Each candidate also carries its
BM25 score for the query (``bm25_score``), whatever the retriever: the likelihood
grader can fuse it into its labels (:mod:`gradir.grading.likelihood`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gradir.cache_dir import default_cache_dir
from gradir.collections.records import Document, Query
from gradir.errors import GradirError
from gradir.retrieval.bm25 import collection_index
from gradir.retrieval.dense import EXACT, ApproximateSearch
from gradir.retrieval.encoding import Encoder
from gradir.retrieval.run import top_ranked
from gradir.retrieval.search import search


@dataclass(frozen=True, slots=True)
class Candidate:
    query_id: str
    query_text: str
    doc_id: str
    rank: int
    score: float | None  # None: a source passage the retriever did not score (BM25 or hybrid, below top_k)
    is_source: bool
    retriever: str
    bm25_score: float | None = None  # the document's BM25 score for the query (None: not asked for)


def mine_candidates(
    queries: dict[str, Query],
    sources: dict[str, str],
    documents: dict[str, Document],
    *,
    retriever: str = "dense",
    top_k: int = 20,
    skip_top: int = 0,
    keep_source: bool = True,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    encoder: Encoder | None = None,
    approximate: ApproximateSearch = EXACT,
    bm25_scores: bool = True,
    cache_dir: Path | None = None,
) -> list[Candidate]:
    """Candidates per query; ``sources`` maps a query id to its source passage id (if any).

    ``bm25_scores`` adds each candidate's BM25 score; the collection's BM25 index is saved
    in and loaded from ``cache_dir`` (None: as :func:`gradir.retrieval.search.search` does).
    """
    margins = absolute_margin is not None or relative_margin is not None
    if margins and retriever != "dense":
        raise GradirError("margins compare cosine scores: use them with --retriever dense")
    if retriever != "bm25":
        encoder = encoder or Encoder()
    run = search(documents, queries, retriever, encoder=encoder, top_k=top_k, approximate=approximate,
                 cache_dir=cache_dir)
    # the source passage's own dense score, also when it ranks below top_k: margins compare
    # against it, and the likelihood grader fuses it (a source with no score counts as average)
    source_scores = _source_scores(queries, sources, documents, encoder) if retriever == "dense" else {}
    candidates: list[Candidate] = []
    for qid, query in queries.items():
        source = sources.get(qid)
        ranked = top_ranked(run.get(qid, {}))
        if keep_source and source is not None:
            score = run.get(qid, {}).get(source, source_scores.get(qid))
            candidates.append(Candidate(qid, query.text, source, 0, None if score is None else float(score), True, retriever))
        for rank, (did, score) in enumerate(ranked, start=1):
            if rank <= skip_top or did == source:
                continue
            if margins and qid in source_scores:
                limit = source_scores[qid]
                if absolute_margin is not None and score > limit - absolute_margin:
                    continue
                if relative_margin is not None and score > limit * (1 - relative_margin):
                    continue
            candidates.append(Candidate(qid, query.text, did, rank, float(score), False, retriever))
    if not bm25_scores:
        return candidates
    return _with_bm25_scores(candidates, documents, cache_dir or (default_cache_dir() if encoder is None else encoder.cache_root))


def _with_bm25_scores(candidates: list[Candidate], documents: dict[str, Document], cache_dir: Path | None) -> list[Candidate]:
    """The candidates with their BM25 scores (the index not saved when ``cache_dir`` is None)."""
    index = collection_index(documents, cache_dir)
    by_query: dict[str, list[int]] = {}
    for i, candidate in enumerate(candidates):
        by_query.setdefault(candidate.query_id, []).append(i)
    scored = list(candidates)
    for rows in by_query.values():
        values = index.score_documents(candidates[rows[0]].query_text, [candidates[i].doc_id for i in rows])
        for i, value in zip(rows, values):
            scored[i] = replace(candidates[i], bm25_score=value)
    return scored


def _source_scores(queries, sources, documents, encoder: Encoder) -> dict[str, float]:
    ids = [q for q in queries if sources.get(q) in documents]
    if not ids:
        return {}
    q_vectors = encoder.encode_queries([queries[q].text for q in ids])
    d_vectors = encoder.encode_documents([documents[sources[q]].full_text for q in ids])
    return dict(zip(ids, np.einsum("ij,ij->i", q_vectors, d_vectors).astype(float)))
