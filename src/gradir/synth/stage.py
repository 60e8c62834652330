"""The synthetic-data stages: passages in, queries, kept queries, level documents and mined pairs out.

``gradir run`` (:mod:`gradir.pipeline.stages`) and the single-stage commands (``gradir
generate queries``, ``generate documents``, ``filter``, ``mine``) call the same
functions here with the same settings (the config sections of
:mod:`gradir.pipeline.config`; a command builds one from its options), so both paths
sample, generate, filter and mine alike. Each stage function reads its input table,
writes its output table (atomically, Parquet or JSONL by the suffix) and returns a JSON
summary of what happened.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Set
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradir.collections.records import Document, Query
from gradir.errors import GradirError
from gradir.synth.records import SyntheticQuery, as_rows, read_synthetic_queries
from gradir.tables import write_table

if TYPE_CHECKING:
    from gradir.llm import LLMClient
    from gradir.pipeline.config import DocumentsSection, FilterSection, GenerateSection, MineSection
    from gradir.retrieval.dense import ApproximateSearch
    from gradir.retrieval.encoding import Encoder

MIN_PASSAGE_WORDS = 8  # shorter documents (titles, stubs) give the LLM nothing to ask about


def sample_passage_ids(documents: Mapping[str, Document], count: int | None, seed: int) -> tuple[list[str], int]:
    """``count`` passage ids (all when None) sampled with ``seed`` from those long enough to ask about, and how many were."""
    eligible = [did for did, doc in documents.items() if len(doc.full_text.split()) >= MIN_PASSAGE_WORDS]
    wanted = len(eligible) if count is None else min(count, len(eligible))
    return random.Random(seed).sample(eligible, wanted), len(eligible)


def write_queries(
    documents: Mapping[str, Document], passage_ids: list[str], settings: GenerateSection, client: LLMClient, seed: int,
) -> tuple[list[SyntheticQuery], dict[str, Any]]:
    """The queries ``settings`` asks for on these passages through ``client``, and a tally of what happened.

    The run's plan calls it with the client's cache-only view to count the calls already paid for.
    """
    from gradir.synth.queries import generate_queries

    queries: list[SyntheticQuery] = []
    tally: dict[str, Any] = {"rejected": Counter(), "failures": Counter(), "unfilled": 0, "shortened": 0, "truncated": 0}
    for types, ids in types_of_passages(passage_ids, list(settings.types), settings.types_per_passage).items():
        result = generate_queries(
            {did: documents[did] for did in ids}, client, types=types, per_doc=settings.per_passage, max_docs=None,
            examples_path=settings.examples or None, seed=seed, attempts=settings.attempts,
        )
        queries += result.queries
        tally["rejected"].update(result.rejected)
        tally["failures"].update(result.failures)
        tally["unfilled"] += result.unfilled
        tally["shortened"] += result.shortened
        tally["truncated"] += result.truncated
    return queries, tally


def types_of_passages(passage_ids: list[str], types: list[str], per_passage: int) -> dict[tuple[str, ...], list[str]]:
    """Group passages by the query types they get: all types, or ``per_passage`` of them in rotation."""
    if per_passage == 0 or per_passage >= len(types):
        return {tuple(types): passage_ids}
    groups: dict[tuple[str, ...], list[str]] = {}
    for k, did in enumerate(passage_ids):
        chosen = tuple(types[(k * per_passage + j) % len(types)] for j in range(per_passage))
        groups.setdefault(chosen, []).append(did)
    return groups


def query_stage(
    documents: Mapping[str, Document], passage_ids: list[str], settings: GenerateSection, client: LLMClient,
    seed: int, out: Path,
) -> dict[str, Any]:
    """Generate the queries for ``passage_ids`` into ``out``; the summary counts them by type, with the yield and the LLM calls."""
    from gradir.synth.queries import query_yield

    mark = client.usage_mark()
    queries, tally = write_queries(documents, passage_ids, settings, client, seed)
    write_table(out, as_rows(queries))
    calls = client.usage_since(mark)
    return {
        "written": len(queries), "passages": len(passage_ids), "by_type": dict(Counter(q.type for q in queries)),
        "rejected": dict(tally["rejected"]), "answer_failures": dict(tally["failures"]), "unfilled": tally["unfilled"],
        "shortened": tally["shortened"], "truncated_passages": tally["truncated"],
        **query_yield(len(queries), tally["unfilled"], calls["llm_calls"] + calls["cache_hits"]), **calls,
    }


def read_queries_of(path: Path, documents: Mapping[str, Document]) -> list[SyntheticQuery]:
    """The queries table at ``path``; an error names the first query whose source passage is not in the collection."""
    queries = read_synthetic_queries(path)
    unknown = sorted({q.source_doc_id for q in queries} - set(documents))
    if unknown:
        raise GradirError(f"{path}: source_doc_id '{unknown[0]}' is not in the collection ({len(unknown)} unknown)")
    return queries


def filter_stage(
    queries_path: Path, documents: Mapping[str, Document], settings: FilterSection, encoder: Encoder | None,
    approximate: ApproximateSearch, out: Path,
) -> dict[str, Any]:
    """Round-trip filter: keep the queries whose source passage the retriever ranks in its top ``settings.top_k``.

    With BM25 the encoder only lends its cache folder (where the collection's BM25 index is
    saved); None means no saved index.
    """
    from gradir.synth.roundtrip import round_trip_filter

    queries = read_queries_of(queries_path, documents)
    if not settings.enabled:
        write_table(out, as_rows(queries))
        return {"written": len(queries), "read": len(queries), "enabled": False}
    result = round_trip_filter(queries, documents, top_k=settings.top_k, retriever=settings.retriever,
                               encoder=encoder, approximate=approximate)
    if not result.kept:
        raise GradirError(f"the round-trip filter kept none of {len(queries)} queries (try a larger top_k)")
    write_table(out, as_rows(result.kept))
    return {
        "written": len(result.kept), "read": len(queries), "enabled": True,
        "kept_fraction": round(len(result.kept) / len(queries), 4),
        "kept_fraction_by_type": {t: round(v, 4) for t, v in result.kept_fraction().items()},
    }


def documents_stage(queries_path: Path, settings: DocumentsSection, client: LLMClient, seed: int, out: Path) -> dict[str, Any]:
    """Documents written for each query at ``settings.levels``, 3 (answers it) to 0 (unrelated)."""
    if not settings.enabled:
        write_table(out, [])
        return {"written": 0, "enabled": False}
    from gradir.synth.documents import generate_documents

    queries = read_synthetic_queries(queries_path)
    mark = client.usage_mark()
    result = generate_documents(queries, client, levels=tuple(settings.levels), domain=settings.domain, seed=seed)
    write_table(out, as_rows(result.documents))
    return {"written": len(result.documents), "enabled": True, "rejected": dict(result.rejected),
            "answer_failures": dict(result.failures), **client.usage_since(mark)}


def mine_stage(
    queries_path: Path, documents: Mapping[str, Document], settings: MineSection, encoder: Encoder | None,
    approximate: ApproximateSearch, out: Path, held_out: Set[str] = frozenset(),
) -> dict[str, Any]:
    """The candidate documents of each query (the pairs a grader judges), with retriever and BM25 scores.

    The ``held_out`` queries (those training will hold out for validation) get the base
    model's top ``validation_top_k``, every rank and no margins: a validation query's judged
    documents are all selection can credit, so they go deeper than a training query's.
    """
    from gradir.retrieval.mining import mine_candidates

    queries = read_queries_of(queries_path, documents)
    common = {"retriever": settings.retriever, "keep_source": settings.keep_source, "encoder": encoder,
              "approximate": approximate}
    training = [q for q in queries if q.query_id not in held_out]
    validation = [q for q in queries if q.query_id in held_out]
    mined = mine_candidates(
        _query_records(training), _sources(training), documents, top_k=settings.top_k, skip_top=settings.skip_top,
        absolute_margin=settings.absolute_margin, relative_margin=settings.relative_margin, **common,
    ) if training else []
    if validation:
        mined += mine_candidates(_query_records(validation), _sources(validation), documents,
                                 top_k=settings.validation_top_k, **common)
    by_query: dict[str, list] = {}
    for candidate in mined:
        by_query.setdefault(candidate.query_id, []).append(candidate)
    candidates = [c for q in queries for c in by_query.get(q.query_id, [])]  # in the queries' order
    write_table(out, [asdict(c) for c in candidates])
    return {"written": len(candidates), "queries": len(queries), "retriever": settings.retriever,
            "validation_queries": len(validation), "validation_top_k": settings.validation_top_k}


def _query_records(queries: list[SyntheticQuery]) -> dict[str, Query]:
    return {q.query_id: Query(q.query_id, q.text) for q in queries}


def _sources(queries: list[SyntheticQuery]) -> dict[str, str]:
    return {q.query_id: q.source_doc_id for q in queries}
