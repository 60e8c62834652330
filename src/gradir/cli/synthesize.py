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
    llm_client,
    say,
    section_from,
    timed,
)
from gradir.cli.options import Options, command, option, section_option
from gradir.pipeline.config import DocumentsSection, FilterSection, GenerateSection, MineSection
from gradir.collections.problems import report_skipped
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
    from gradir.collections import load_collection
    from gradir.synth import QUERY_TYPES
    from gradir.synth.stage import query_stage, sample_passage_ids

    chosen = [t.strip() for t in o.types.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in QUERY_TYPES]
    if unknown or not chosen:
        raise GradirError(f"--types: unknown type(s) {', '.join(unknown) or '(none given)'} (choose from {', '.join(QUERY_TYPES)})")
    settings = section_from(GenerateSection, per_passage=o.per_doc, types=chosen, types_per_passage=0, attempts=o.attempts,
                               examples=str(o.examples or ""))
    loaded = load_collection(o.collection, lenient=o.lenient)
    passage_ids, _ = sample_passage_ids(loaded.documents, o.max_docs, o.seed)
    client = llm_client(o)
    try:
        summary = timed(lambda: query_stage(loaded.documents, passage_ids, settings, client, o.seed, o.out), o.out)
    finally:
        client.close()
    report_skipped(loaded.log.summary())
    say(o, summary, f"wrote {summary['written']} queries to {o.out} ({summary['llm_calls']} LLM calls, "
                    f"{summary['cache_hits']} from cache, {summary['failed']} failed, {sum(summary['rejected'].values())} rejected)")


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
    from gradir.synth.stage import documents_stage

    try:
        levels = [int(v) for v in o.levels.split(",") if v.strip()]
    except ValueError:
        raise GradirError(f"--levels: '{o.levels}' is not a comma-separated list of integers") from None
    settings = section_from(DocumentsSection, enabled=True, levels=levels, domain=o.domain)
    client = llm_client(o)
    try:
        summary = timed(lambda: documents_stage(o.queries, settings, client, o.seed, o.out), o.out)
    finally:
        client.close()
    say(o, summary, f"wrote {summary['written']} documents to {o.out} ({summary['llm_calls']} LLM calls, {summary['failed']} failed)")


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
    from gradir.collections import load_collection
    from gradir.synth.stage import filter_stage

    settings = section_from(FilterSection, retriever=check_retriever(o.retriever), top_k=o.top_k)
    approximate = approximate_search(o.index)
    loaded = load_collection(o.collection, lenient=o.lenient)
    summary = timed(lambda: filter_stage(o.queries, loaded.documents, settings, search_encoder(o), approximate, o.out), o.out)
    say(o, summary, f"kept {summary['written']} of {summary['read']} queries; by type: {summary['kept_fraction_by_type']}")


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
    from gradir.collections import load_collection
    from gradir.synth.stage import mine_stage

    settings = section_from(MineSection, retriever=check_retriever(o.retriever), top_k=o.top_k, skip_top=o.skip_top,
                           keep_source=not o.exclude_source, absolute_margin=o.absolute_margin,
                           relative_margin=o.relative_margin)
    approximate = approximate_search(o.index)
    loaded = load_collection(o.collection, lenient=o.lenient)
    summary = timed(lambda: mine_stage(o.queries, loaded.documents, settings, search_encoder(o), approximate, o.out), o.out)
    say(o, summary, f"wrote {summary['written']} pairs for {summary['queries']} queries to {o.out}")


def search_encoder(o: Options):
    """The dense model of ``SEARCH`` (None with BM25, which needs none)."""
    from gradir.retrieval.encoding import Encoder

    return Encoder(o.model, backend=o.backend, precision=o.precision) if o.retriever != "bm25" else None
