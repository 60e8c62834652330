"""Round-trip filtering: keep a query only if its source passage comes back in the retriever's top k."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from gradir.collections.records import Document, Query
from gradir.retrieval.dense import EXACT, ApproximateSearch
from gradir.retrieval.encoding import Encoder
from gradir.retrieval.search import search
from gradir.synth.records import SyntheticQuery


@dataclass
class RoundTrip:
    kept: list[SyntheticQuery]
    total_by_type: Counter
    kept_by_type: Counter

    def kept_fraction(self) -> dict[str, float]:
        return {t: self.kept_by_type[t] / n for t, n in sorted(self.total_by_type.items()) if n}


def round_trip_filter(
    queries: list[SyntheticQuery],
    documents: dict[str, Document],
    *,
    top_k: int = 10,
    retriever: str = "dense",
    encoder: Encoder | None = None,
    approximate: ApproximateSearch = EXACT,
) -> RoundTrip:
    as_queries = {q.query_id: Query(q.query_id, q.text) for q in queries}
    run = search(documents, as_queries, retriever, encoder=encoder, top_k=top_k, approximate=approximate)
    kept = [q for q in queries if q.source_doc_id in run.get(q.query_id, {})]
    return RoundTrip(kept, Counter(q.type for q in queries), Counter(q.type for q in kept))
