"""Commands that write synthetic data: generate queries / documents, filter, mine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gradir.cli.common import (
    ApiKeyEnvOpt,
    BackendOpt,
    CollectionOpt,
    ConcurrencyOpt,
    IndexOpt,
    JsonOpt,
    LLMOpt,
    LenientOpt,
    NoCacheOpt,
    PrecisionOpt,
    RetriesOpt,
    TimeoutOpt,
    app,
    approximate_search,
    check_retriever,
    emit,
    llm_client,
    llm_summary,
)
from gradir.collections.problems import report_skipped
from gradir.console import err_console
from gradir.errors import GradirError
from gradir.retrieval.runtimes import DEFAULT_BACKEND, DEFAULT_PRECISION


generate_app = typer.Typer(help="Generate synthetic queries and documents with an LLM.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")


@generate_app.command("queries")
def generate_queries_command(
    collection: CollectionOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Queries table to write (.parquet or .jsonl).")],
    types: Annotated[str, typer.Option("--types", help="Comma-separated: question, claim, keywords, title, web.")] = "question,claim,keywords,title,web",
    per_doc: Annotated[int, typer.Option("--per-doc", min=1, help="Queries per passage and type.")] = 1,
    max_docs: Annotated[Optional[int], typer.Option("--max-docs", min=1, help="Passages sampled (seeded); default all.")] = None,
    examples: Annotated[Optional[Path], typer.Option("--examples", help="Your example queries (JSONL or one a line) for the few-shot prompts.")] = None,
    llm: LLMOpt = "llamacpp",
    seed: Annotated[int, typer.Option("--seed", help="Seed of passage sampling and generation.")] = 0,
    attempts: Annotated[int, typer.Option("--attempts", min=1, help="Tries per query when an answer fails or is rejected.")] = 6,
    no_cache: NoCacheOpt = False,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    concurrency: ConcurrencyOpt = 8,
    timeout: TimeoutOpt = 60.0,
    max_retries: RetriesOpt = 4,
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate queries of several types for sampled passages of a collection."""
    import time

    from gradir.collections import load_collection
    from gradir.synth import QUERY_TYPES, generate_queries
    from gradir.synth.queries import query_yield
    from gradir.synth.records import as_rows
    from gradir.tables import write_table

    start = time.perf_counter()
    chosen = tuple(t.strip() for t in types.split(",") if t.strip())
    unknown = [t for t in chosen if t not in QUERY_TYPES]
    if unknown or not chosen:
        raise GradirError(f"--types: unknown type(s) {', '.join(unknown) or '(none given)'} (choose from {', '.join(QUERY_TYPES)})")
    loaded = load_collection(collection, lenient=lenient)
    client = llm_client(llm, no_cache, api_key_env, concurrency, timeout, max_retries)
    try:
        result = generate_queries(
            loaded.documents, client, types=chosen, per_doc=per_doc, max_docs=max_docs,
            examples_path=examples, seed=seed, attempts=attempts,
        )
        write_table(out, as_rows(result.queries))
    finally:
        client.close()
    by_type: dict[str, int] = {}
    for q in result.queries:
        by_type[q.type] = by_type.get(q.type, 0) + 1
    summary = llm_summary(
        client, len(result.queries), out, time.perf_counter() - start,
        passages=result.passages, truncated_passages=result.truncated, by_type=by_type,
        rejected=dict(result.rejected), answer_failures=dict(result.failures), unfilled=result.unfilled,
        shortened=result.shortened,
    )
    summary.update(query_yield(len(result.queries), result.unfilled, summary["llm_calls"] + summary["cache_hits"]))
    report_skipped(loaded.log.summary())
    if as_json:
        emit(summary, True)
    else:
        err_console.print(
            f"wrote {summary['written']} queries to {out} ({summary['llm_calls']} LLM calls, "
            f"{summary['cache_hits']} from cache, {summary['failed']} failed, {sum(result.rejected.values())} rejected)"
        )


@generate_app.command("documents")
def generate_documents_command(
    queries: Annotated[Path, typer.Option("--queries", "-q", help="Queries table from `gradir generate queries`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Documents table to write (.parquet or .jsonl).")],
    levels: Annotated[str, typer.Option("--levels", help="Relevance levels to write, comma-separated.")] = "3,2,1,0",
    domain: Annotated[str, typer.Option("--domain", help="What the collection is about, for level-0 documents.")] = "the same field as the query",
    llm: LLMOpt = "llamacpp",
    seed: Annotated[int, typer.Option("--seed", help="Seed of generation.")] = 0,
    no_cache: NoCacheOpt = False,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    concurrency: ConcurrencyOpt = 8,
    timeout: TimeoutOpt = 60.0,
    max_retries: RetriesOpt = 4,
    as_json: JsonOpt = False,
) -> None:
    """Write documents for each query at relevance levels 3 (answers) to 0 (unrelated)."""
    import time

    from gradir.synth import generate_documents
    from gradir.synth.records import as_rows, read_synthetic_queries
    from gradir.tables import write_table

    start = time.perf_counter()
    try:
        chosen = tuple(int(v) for v in levels.split(",") if v.strip())
    except ValueError:
        raise GradirError(f"--levels: '{levels}' is not a comma-separated list of integers") from None
    records = read_synthetic_queries(queries)
    client = llm_client(llm, no_cache, api_key_env, concurrency, timeout, max_retries)
    try:
        result = generate_documents(records, client, levels=chosen, domain=domain, seed=seed)
        write_table(out, as_rows(result.documents))
    finally:
        client.close()
    summary = llm_summary(
        client, len(result.documents), out, time.perf_counter() - start,
        rejected=dict(result.rejected), answer_failures=dict(result.failures),
    )
    if as_json:
        emit(summary, True)
    else:
        err_console.print(f"wrote {summary['written']} documents to {out} ({summary['llm_calls']} LLM calls, {summary['failed']} failed)")


@app.command("filter")
def filter_command(
    queries: Annotated[Path, typer.Option("--queries", "-q", help="Queries table from `gradir generate queries`.")],
    collection: CollectionOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Kept queries (.parquet or .jsonl).")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Keep a query whose source passage is in this many results.")] = 10,
    retriever: Annotated[str, typer.Option("--retriever", help="dense, bm25 or hybrid.")] = "dense",
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Dense model; default all-MiniLM-L6-v2.")] = None,
    backend: BackendOpt = DEFAULT_BACKEND,
    precision: PrecisionOpt = DEFAULT_PRECISION,
    index: IndexOpt = "exact",
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Round-trip filter: keep queries whose source passage the retriever finds in its top k."""
    import time

    from gradir.collections import load_collection
    from gradir.retrieval.encoding import Encoder
    from gradir.synth import round_trip_filter
    from gradir.synth.records import as_rows, read_synthetic_queries
    from gradir.tables import write_table

    check_retriever(retriever)
    approximate = approximate_search(index)
    start = time.perf_counter()
    loaded = load_collection(collection, lenient=lenient)
    records = read_synthetic_queries(queries)
    unknown = sorted({q.source_doc_id for q in records} - set(loaded.documents))
    if unknown:
        raise GradirError(f"{queries}: source_doc_id '{unknown[0]}' is not in {collection} ({len(unknown)} unknown)")
    encoder = Encoder(model, backend=backend, precision=precision) if retriever != "bm25" else None
    result = round_trip_filter(records, loaded.documents, top_k=top_k, retriever=retriever, encoder=encoder,
                               approximate=approximate)
    write_table(out, as_rows(result.kept))
    summary = {
        "written": len(result.kept),
        "read": len(records),
        "kept_fraction": round(len(result.kept) / len(records), 4),
        "kept_fraction_by_type": {t: round(v, 4) for t, v in result.kept_fraction().items()},
        "out": str(out),
        "seconds": round(time.perf_counter() - start, 3),
    }
    if as_json:
        emit(summary, True)
    else:
        err_console.print(f"kept {len(result.kept)} of {len(records)} queries; by type: {summary['kept_fraction_by_type']}")


@app.command("mine")
def mine_command(
    queries: Annotated[Path, typer.Option("--queries", "-q", help="Queries table (from `gradir generate queries` or `gradir filter`).")],
    collection: CollectionOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Pairs table to write (.parquet or .jsonl).")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Candidates retrieved per query.")] = 20,
    skip_top: Annotated[int, typer.Option("--skip-top", min=0, help="Leave out the first n ranks (likely unlabelled positives).")] = 0,
    retriever: Annotated[str, typer.Option("--retriever", help="dense, bm25 or hybrid.")] = "dense",
    exclude_source: Annotated[bool, typer.Option("--exclude-source", help="Leave the source passage out of the pairs.")] = False,
    absolute_margin: Annotated[Optional[float], typer.Option("--absolute-margin", help="Keep candidates scoring below source - margin (dense).")] = None,
    relative_margin: Annotated[Optional[float], typer.Option("--relative-margin", help="Keep candidates scoring below source x (1 - margin) (dense).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Dense model; default all-MiniLM-L6-v2.")] = None,
    backend: BackendOpt = DEFAULT_BACKEND,
    precision: PrecisionOpt = DEFAULT_PRECISION,
    index: IndexOpt = "exact",
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Mine candidate documents for each query: the pairs a grader will judge."""
    import time
    from dataclasses import asdict

    from gradir.collections import load_collection
    from gradir.collections.records import Query
    from gradir.retrieval.encoding import Encoder
    from gradir.retrieval.mining import mine_candidates
    from gradir.synth.records import read_synthetic_queries
    from gradir.tables import write_table

    check_retriever(retriever)
    approximate = approximate_search(index)
    start = time.perf_counter()
    loaded = load_collection(collection, lenient=lenient)
    records = read_synthetic_queries(queries)
    encoder = Encoder(model, backend=backend, precision=precision) if retriever != "bm25" else None
    candidates = mine_candidates(
        {q.query_id: Query(q.query_id, q.text) for q in records},
        {q.query_id: q.source_doc_id for q in records if q.source_doc_id in loaded.documents},
        loaded.documents, retriever=retriever, top_k=top_k, skip_top=skip_top, keep_source=not exclude_source,
        absolute_margin=absolute_margin, relative_margin=relative_margin, encoder=encoder,
        approximate=approximate,
    )
    write_table(out, [asdict(c) for c in candidates])
    summary = {
        "written": len(candidates), "queries": len(records), "retriever": retriever,
        "out": str(out), "seconds": round(time.perf_counter() - start, 3),
    }
    if as_json:
        emit(summary, True)
    else:
        err_console.print(f"wrote {len(candidates)} pairs for {len(records)} queries to {out}")


