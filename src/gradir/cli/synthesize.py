"""Commands that write synthetic data: generate queries / documents, filter, mine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gradir.cli.common import (
    COLLECTION,
    ENCODING_RUNTIME,
    INDEX,
    JSON,
    LENIENT,
    LLM_CONNECTION,
    app,
    approximate_search,
    check_retriever,
    emit,
    llm_client,
    llm_summary,
)
from gradir.cli.options import Options, command, option, section_option
from gradir.pipeline.config import GenerateSection
from gradir.collections.problems import report_skipped
from gradir.console import err_console
from gradir.errors import GradirError


# The retriever that filters and mines, and how it encodes and searches.
SEARCH = (
    option("retriever", str, "--retriever", default="dense", help="dense, bm25 or hybrid."),
    option("model", Optional[str], "--model", "-m", default=None, help="Dense model; default all-MiniLM-L6-v2."),
    ENCODING_RUNTIME,
    INDEX,
)

generate_app = typer.Typer(help="Generate synthetic queries and documents with an LLM.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")


@command(
    generate_app, "queries", COLLECTION,
    option("out", Path, "--out", "-o", help="Queries table to write (.parquet or .jsonl)."),
    option("types", str, "--types", default="question,claim,keywords,title,web", help="Comma-separated: question, claim, keywords, title, web."),
    section_option(GenerateSection, "per_passage", int, "--per-doc", name="per_doc", min=1, help="Queries per passage and type."),
    option("max_docs", Optional[int], "--max-docs", default=None, min=1, help="Passages sampled (seeded); default all."),
    option("examples", Optional[Path], "--examples", default=None, help="Your example queries (JSONL or one a line) for the few-shot prompts."),
    option("seed", int, "--seed", default=0, help="Seed of passage sampling and generation."),
    section_option(GenerateSection, "attempts", int, "--attempts", min=1),
    LLM_CONNECTION, LENIENT, JSON,
)
def generate_queries_command(o: Options) -> None:
    """Generate queries of several types for sampled passages of a collection."""
    import time

    from gradir.collections import load_collection
    from gradir.synth import QUERY_TYPES, generate_queries
    from gradir.synth.queries import query_yield
    from gradir.synth.records import as_rows
    from gradir.tables import write_table

    start = time.perf_counter()
    chosen = tuple(t.strip() for t in o.types.split(",") if t.strip())
    unknown = [t for t in chosen if t not in QUERY_TYPES]
    if unknown or not chosen:
        raise GradirError(f"--types: unknown type(s) {', '.join(unknown) or '(none given)'} (choose from {', '.join(QUERY_TYPES)})")
    loaded = load_collection(o.collection, lenient=o.lenient)
    client = llm_client(o)
    try:
        result = generate_queries(
            loaded.documents, client, types=chosen, per_doc=o.per_doc, max_docs=o.max_docs,
            examples_path=o.examples, seed=o.seed, attempts=o.attempts,
        )
        write_table(o.out, as_rows(result.queries))
    finally:
        client.close()
    by_type: dict[str, int] = {}
    for q in result.queries:
        by_type[q.type] = by_type.get(q.type, 0) + 1
    summary = llm_summary(
        client, len(result.queries), o.out, time.perf_counter() - start,
        passages=result.passages, truncated_passages=result.truncated, by_type=by_type,
        rejected=dict(result.rejected), answer_failures=dict(result.failures), unfilled=result.unfilled,
        shortened=result.shortened,
    )
    summary.update(query_yield(len(result.queries), result.unfilled, summary["llm_calls"] + summary["cache_hits"]))
    report_skipped(loaded.log.summary())
    if o.as_json:
        emit(summary, True)
    else:
        err_console.print(
            f"wrote {summary['written']} queries to {o.out} ({summary['llm_calls']} LLM calls, "
            f"{summary['cache_hits']} from cache, {summary['failed']} failed, {sum(result.rejected.values())} rejected)"
        )


@command(
    generate_app, "documents",
    option("queries", Path, "--queries", "-q", help="Queries table from `gradir generate queries`."),
    option("out", Path, "--out", "-o", help="Documents table to write (.parquet or .jsonl)."),
    option("levels", str, "--levels", default="3,2,1,0", help="Relevance levels to write, comma-separated."),
    option("domain", str, "--domain", default="the same field as the query", help="What the collection is about, for level-0 documents."),
    option("seed", int, "--seed", default=0, help="Seed of generation."),
    LLM_CONNECTION, JSON,
)
def generate_documents_command(o: Options) -> None:
    """Write documents for each query at relevance levels 3 (answers) to 0 (unrelated)."""
    import time

    from gradir.synth import generate_documents
    from gradir.synth.records import as_rows, read_synthetic_queries
    from gradir.tables import write_table

    start = time.perf_counter()
    try:
        chosen = tuple(int(v) for v in o.levels.split(",") if v.strip())
    except ValueError:
        raise GradirError(f"--levels: '{o.levels}' is not a comma-separated list of integers") from None
    records = read_synthetic_queries(o.queries)
    client = llm_client(o)
    try:
        result = generate_documents(records, client, levels=chosen, domain=o.domain, seed=o.seed)
        write_table(o.out, as_rows(result.documents))
    finally:
        client.close()
    summary = llm_summary(
        client, len(result.documents), o.out, time.perf_counter() - start,
        rejected=dict(result.rejected), answer_failures=dict(result.failures),
    )
    if o.as_json:
        emit(summary, True)
    else:
        err_console.print(f"wrote {summary['written']} documents to {o.out} ({summary['llm_calls']} LLM calls, {summary['failed']} failed)")


@command(
    app, "filter",
    option("queries", Path, "--queries", "-q", help="Queries table from `gradir generate queries`."),
    COLLECTION,
    option("out", Path, "--out", "-o", help="Kept queries (.parquet or .jsonl)."),
    option("top_k", int, "--top-k", default=10, min=1, help="Keep a query whose source passage is in this many results."),
    SEARCH, LENIENT, JSON,
)
def filter_command(o: Options) -> None:
    """Round-trip filter: keep queries whose source passage the retriever finds in its top k."""
    import time

    from gradir.collections import load_collection
    from gradir.retrieval.encoding import Encoder
    from gradir.synth import round_trip_filter
    from gradir.synth.records import as_rows, read_synthetic_queries
    from gradir.tables import write_table

    check_retriever(o.retriever)
    approximate = approximate_search(o.index)
    start = time.perf_counter()
    loaded = load_collection(o.collection, lenient=o.lenient)
    records = read_synthetic_queries(o.queries)
    unknown = sorted({q.source_doc_id for q in records} - set(loaded.documents))
    if unknown:
        raise GradirError(f"{o.queries}: source_doc_id '{unknown[0]}' is not in {o.collection} ({len(unknown)} unknown)")
    encoder = Encoder(o.model, backend=o.backend, precision=o.precision) if o.retriever != "bm25" else None
    result = round_trip_filter(records, loaded.documents, top_k=o.top_k, retriever=o.retriever, encoder=encoder,
                               approximate=approximate)
    write_table(o.out, as_rows(result.kept))
    summary = {
        "written": len(result.kept),
        "read": len(records),
        "kept_fraction": round(len(result.kept) / len(records), 4),
        "kept_fraction_by_type": {t: round(v, 4) for t, v in result.kept_fraction().items()},
        "out": str(o.out),
        "seconds": round(time.perf_counter() - start, 3),
    }
    if o.as_json:
        emit(summary, True)
    else:
        err_console.print(f"kept {len(result.kept)} of {len(records)} queries; by type: {summary['kept_fraction_by_type']}")


@command(
    app, "mine",
    option("queries", Path, "--queries", "-q", help="Queries table (from `gradir generate queries` or `gradir filter`)."),
    COLLECTION,
    option("out", Path, "--out", "-o", help="Pairs table to write (.parquet or .jsonl)."),
    option("top_k", int, "--top-k", default=20, min=1, help="Candidates retrieved per query."),
    option("skip_top", int, "--skip-top", default=0, min=0, help="Leave out the first n ranks (likely unlabelled positives)."),
    option("exclude_source", bool, "--exclude-source", default=False, help="Leave the source passage out of the pairs."),
    option("absolute_margin", Optional[float], "--absolute-margin", default=None, help="Keep candidates scoring below source - margin (dense)."),
    option("relative_margin", Optional[float], "--relative-margin", default=None, help="Keep candidates scoring below source x (1 - margin) (dense)."),
    SEARCH, LENIENT, JSON,
)
def mine_command(o: Options) -> None:
    """Mine candidate documents for each query: the pairs a grader will judge."""
    import time
    from dataclasses import asdict

    from gradir.collections import load_collection
    from gradir.collections.records import Query
    from gradir.retrieval.encoding import Encoder
    from gradir.retrieval.mining import mine_candidates
    from gradir.synth.records import read_synthetic_queries
    from gradir.tables import write_table

    check_retriever(o.retriever)
    approximate = approximate_search(o.index)
    start = time.perf_counter()
    loaded = load_collection(o.collection, lenient=o.lenient)
    records = read_synthetic_queries(o.queries)
    encoder = Encoder(o.model, backend=o.backend, precision=o.precision) if o.retriever != "bm25" else None
    candidates = mine_candidates(
        {q.query_id: Query(q.query_id, q.text) for q in records},
        {q.query_id: q.source_doc_id for q in records if q.source_doc_id in loaded.documents},
        loaded.documents, retriever=o.retriever, top_k=o.top_k, skip_top=o.skip_top, keep_source=not o.exclude_source,
        absolute_margin=o.absolute_margin, relative_margin=o.relative_margin, encoder=encoder,
        approximate=approximate,
    )
    write_table(o.out, [asdict(c) for c in candidates])
    summary = {
        "written": len(candidates), "queries": len(records), "retriever": o.retriever,
        "out": str(o.out), "seconds": round(time.perf_counter() - start, 3),
    }
    if o.as_json:
        emit(summary, True)
    else:
        err_console.print(f"wrote {len(candidates)} pairs for {len(records)} queries to {o.out}")


