"""Mining candidates for each query: the documents a grader should judge.

For each query, the retriever's top ``top_k`` (dense with the base model, BM25, or both
fused), with ranks ``skip_top``..``top_k`` kept (as sentence-transformers'
``mine_hard_negatives`` samples ranks n..m). The source passage is kept (marked) or left
out. With dense scores, a candidate may be dropped when it scores too close to the
source passage: ``absolute_margin`` keeps s < s_source − margin, ``relative_margin``
keeps s < s_source · (1 − margin). Queries are searched in batches through FAISS, so
memory stays bounded by the index for 100k+ documents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradir.collections.records import Document, Query
from gradir.errors import GradirError
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
) -> list[Candidate]:
    """Candidates per query; ``sources`` maps a query id to its source passage id (if any)."""
    margins = absolute_margin is not None or relative_margin is not None
    if margins and retriever != "dense":
        raise GradirError("margins compare cosine scores: use them with --retriever dense")
    if retriever != "bm25":
        encoder = encoder or Encoder()
    run = search(documents, queries, retriever, encoder=encoder, top_k=top_k, approximate=approximate)
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
    return candidates


def _source_scores(queries, sources, documents, encoder: Encoder) -> dict[str, float]:
    ids = [q for q in queries if sources.get(q) in documents]
    if not ids:
        return {}
    q_vectors = encoder.encode_queries([queries[q].text for q in ids])
    d_vectors = encoder.encode_documents([documents[sources[q]].full_text for q in ids])
    return dict(zip(ids, np.einsum("ij,ij->i", q_vectors, d_vectors).astype(float)))
