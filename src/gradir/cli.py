"""The ``gradir`` command.

Every command that does work prints one JSON object on stdout when given ``--json``;
progress bars and logs go to stderr. Expected mistakes (bad files, bad options) end
with a message and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from gradir.collections.problems import report_skipped
from gradir.console import err_console
from gradir.errors import GradirError
from gradir.training_defaults import (
    DEFAULT_LOSS_LEARNING_RATE,
    DEFAULT_THRESHOLD,
    DEFAULT_VALIDATION_DOCUMENTS,
    DEFAULT_VALIDATION_SHARE,
)
from gradir.runtimes import DEFAULT_BACKEND, DEFAULT_PRECISION

app = typer.Typer(
    name="gradir",
    help="Adapt text-embedding models to your own collection with synthetic data and graded labels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

CollectionOpt = Annotated[Path, typer.Option("--collection", "-c", help="BEIR folder (corpus, queries, qrels/).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object with the results on stdout.")]
LenientOpt = Annotated[bool, typer.Option("--lenient", help="Skip bad records and report how many and why.")]
SplitOpt = Annotated[str, typer.Option("--split", help="Which qrels split to evaluate on.")]
BackendOpt = Annotated[str, typer.Option("--backend", help="Encoding runtime: torch, onnx (ONNX Runtime) or openvino.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="Encoding precision: fp32, or int8 (onnx, openvino).")]


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")


def _check_retriever(retriever: str) -> None:
    from gradir.retrieval.search import RETRIEVERS

    if retriever not in RETRIEVERS:
        raise GradirError(f"--retriever: unknown retriever '{retriever}' (choose from {', '.join(RETRIEVERS)})")


@app.command("eval")
def eval_command(
    collection: CollectionOpt,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Local sentence-transformers model; default all-MiniLM-L6-v2.")] = None,
    split: SplitOpt = "test",
    retriever: Annotated[str, typer.Option("--retriever", help="dense, bm25 or hybrid (dense + BM25, RRF).")] = "dense",
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Documents retrieved per query.")] = 100,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write metrics.json, per_query.tsv and run.trec here.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")] = 32,
    max_seq_length: Annotated[Optional[int], typer.Option("--max-seq-length", min=1, help="Token limit; default the model's.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Embedding cache; default $GRADIR_CACHE_DIR or ~/.cache/gradir.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the embedding cache.")] = False,
    backend: BackendOpt = DEFAULT_BACKEND,
    precision: PrecisionOpt = DEFAULT_PRECISION,
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a retriever on a collection: nDCG@10, Recall@100, MRR@10, MAP@100."""
    from gradir.collections import load_collection
    from gradir.encoding import Encoder
    from gradir.evaluation import evaluate

    _check_retriever(retriever)
    loaded = load_collection(collection, lenient=lenient)
    encoder = None
    if retriever != "bm25":
        encoder = Encoder(
            model,
            cache_dir=False if no_cache else cache_dir,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            backend=backend,
            precision=precision,
        )
    result = evaluate(loaded, split=split, retriever=retriever, encoder=encoder, top_k=top_k)
    if out is not None:
        result.save(out)
    report_skipped(loaded.log.summary())
    summary = result.summary()
    summary["skipped"] = loaded.log.summary()
    if as_json:
        _emit(summary, True)
    else:
        _print_metrics(result.metrics, f"{loaded.name} / {split} / {retriever}")
        if out is not None:
            err_console.print(f"wrote {out}/metrics.json, per_query.tsv, run.trec")


def _print_metrics(metrics: dict[str, float], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for name in metrics:
        table.add_column(name, justify="right")
    table.add_row(*(f"{v:.4f}" for v in metrics.values()))
    Console().print(table)


def _resolve_run_path(path: Path) -> Path:
    return path / "run.trec" if path.is_dir() else path


@app.command("compare")
def compare_command(
    run_a: Annotated[Path, typer.Argument(help="Run file (or an eval --out folder) of system A, the baseline.")],
    run_b: Annotated[Path, typer.Argument(help="Run file (or an eval --out folder) of system B.")],
    collection: CollectionOpt,
    split: SplitOpt = "test",
    metric: Annotated[str, typer.Option("--metric", help="ndcg@10, recall@100, mrr@10 or map@100.")] = "ndcg@10",
    resamples: Annotated[int, typer.Option("--resamples", min=100, help="Randomisation-test resamples.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the randomisation test.")] = 0,
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Per-query wins and losses of B against A, with a paired t-test and a randomisation test."""
    from gradir.collections import load_collection
    from gradir.evaluation import METRICS, compare_per_query, read_run, score_run

    if metric not in METRICS:
        raise GradirError(f"--metric: unknown metric '{metric}' (choose from {', '.join(METRICS)})")
    loaded = load_collection(collection, lenient=lenient)
    qrels = loaded.qrels(split)
    _, per_a = score_run(qrels, read_run(_resolve_run_path(run_a), loaded.log))
    _, per_b = score_run(qrels, read_run(_resolve_run_path(run_b), loaded.log))
    result = compare_per_query(per_a, per_b, metric=metric, resamples=resamples, seed=seed)
    report_skipped(loaded.log.summary())
    if as_json:
        _emit(result.as_dict(), True)
        return
    from rich.console import Console

    Console().print(
        f"{metric} over {result.queries} queries: A {result.mean_a:.4f}, B {result.mean_b:.4f}, "
        f"B - A {result.delta:+.4f}\n"
        f"B wins {result.wins}, loses {result.losses}, ties {result.ties}\n"
        f"paired t-test p = {result.p_ttest:.4g} (t = {result.t_statistic:.3f}); "
        f"randomisation test p = {result.p_randomization:.4g}"
    )


@app.command("check")
def check_command(
    collection: CollectionOpt,
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate a collection: the corpus, the queries and every qrels split."""
    from gradir.collections import load_collection

    loaded = load_collection(collection, lenient=lenient)
    splits = {split: sum(len(d) for d in loaded.qrels(split).values()) for split in loaded.splits()}
    result = {
        "collection": str(collection),
        "documents": len(loaded.documents),
        "queries": len(loaded.queries),
        "judgments": splits,
        "skipped": loaded.log.summary(),
        "problems": [str(p) for p in loaded.log.problems[:100]],
    }
    report_skipped(loaded.log.summary())
    if as_json:
        _emit(result, True)
    else:
        judged = ", ".join(f"{s}: {n}" for s, n in splits.items()) or "no qrels"
        err_console.print(f"{collection}: {len(loaded.documents)} documents, {len(loaded.queries)} queries, judgments {judged}")


judgments_app = typer.Typer(help="Make judgments tables (the supervision of the graded losses).", no_args_is_help=True)
app.add_typer(judgments_app, name="judgments")


@judgments_app.command("from-qrels")
def judgments_from_qrels_command(
    collection: CollectionOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Judgments table to write (.parquet or .jsonl).")],
    split: Annotated[str, typer.Option("--split", help="Which qrels split to turn into judgments.")] = "train",
    max_queries: Annotated[Optional[int], typer.Option("--max-queries", min=1, help="Sample this many queries (seeded).")] = None,
    negatives: Annotated[int, typer.Option("--negatives", min=0, help="Mined unjudged negatives per query, added as grade 0.")] = 0,
    retriever: Annotated[str, typer.Option("--retriever", help="Retriever that mines the negatives: dense, bm25 or hybrid.")] = "dense",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the query and negative sampling.")] = 0,
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Turn human graded qrels into a judgments table (p_relevant = grade / top grade)."""
    import time

    from gradir.collections import load_collection
    from gradir.judgments import judgments_from_qrels, write_judgments

    start = time.perf_counter()
    loaded = load_collection(collection, lenient=lenient)
    judgments = judgments_from_qrels(
        loaded, split, max_queries=max_queries, negatives=negatives, retriever=retriever, seed=seed
    )
    write_judgments(out, judgments)
    grades: dict[str, int] = {}
    for j in judgments:
        grades[str(j.grade)] = grades.get(str(j.grade), 0) + 1
    result = {
        "written": len(judgments),
        "queries": len({j.query_id for j in judgments}),
        "grades": dict(sorted(grades.items())),
        "out": str(out),
        "seconds": round(time.perf_counter() - start, 3),
    }
    report_skipped(loaded.log.summary())
    if as_json:
        _emit(result, True)
    else:
        err_console.print(f"wrote {result['written']} judgments of {result['queries']} queries to {out}")


generate_app = typer.Typer(help="Generate synthetic queries and documents with an LLM.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")

LLMOpt = Annotated[str, typer.Option("--llm", help="llamacpp[:GGUF], openai:URL@MODEL, hf:PATH or vllm:PATH.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the LLM call cache.")]
ApiKeyEnvOpt = Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the API key (openai backend).")]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight at once (openai backend).")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per request (openai backend).")]
RetriesOpt = Annotated[int, typer.Option("--max-retries", min=0, help="Retries of a failed request (openai backend).")]


def _llm_client(spec: str, no_cache: bool, api_key_env: str, concurrency: int, timeout: float, max_retries: int):
    from gradir.llm import LLMClient, load_backend

    backend = load_backend(spec, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout, max_retries=max_retries)
    return LLMClient(backend, cache_dir=False if no_cache else None)


def _llm_summary(client, written: int, out: Path, seconds: float, **extra) -> dict:
    counts = client.counts
    return {
        "written": written,
        "llm_calls": counts.llm_calls,
        "cache_hits": counts.cache_hits,
        "failed": counts.failed,
        "failures": counts.failures,
        "retries": client.backend.retries,
        "model": client.model_id,
        "out": str(out),
        "seconds": round(seconds, 3),
        **extra,
    }


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
    from gradir.synth.records import as_rows
    from gradir.tables import write_table

    start = time.perf_counter()
    chosen = tuple(t.strip() for t in types.split(",") if t.strip())
    unknown = [t for t in chosen if t not in QUERY_TYPES]
    if unknown or not chosen:
        raise GradirError(f"--types: unknown type(s) {', '.join(unknown) or '(none given)'} (choose from {', '.join(QUERY_TYPES)})")
    loaded = load_collection(collection, lenient=lenient)
    client = _llm_client(llm, no_cache, api_key_env, concurrency, timeout, max_retries)
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
    summary = _llm_summary(
        client, len(result.queries), out, time.perf_counter() - start,
        passages=result.passages, truncated_passages=result.truncated, by_type=by_type,
        rejected=dict(result.rejected), answer_failures=dict(result.failures), unfilled=result.unfilled,
        shortened=result.shortened, slot_yield=round(len(result.queries) / max(1, result.slots), 4),
    )
    summary["calls_per_query"] = (
        round((summary["llm_calls"] + summary["cache_hits"]) / len(result.queries), 3) if result.queries else None
    )
    report_skipped(loaded.log.summary())
    if as_json:
        _emit(summary, True)
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
    client = _llm_client(llm, no_cache, api_key_env, concurrency, timeout, max_retries)
    try:
        result = generate_documents(records, client, levels=chosen, domain=domain, seed=seed)
        write_table(out, as_rows(result.documents))
    finally:
        client.close()
    summary = _llm_summary(
        client, len(result.documents), out, time.perf_counter() - start,
        rejected=dict(result.rejected), answer_failures=dict(result.failures),
    )
    if as_json:
        _emit(summary, True)
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
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Round-trip filter: keep queries whose source passage the retriever finds in its top k."""
    import time

    from gradir.collections import load_collection
    from gradir.encoding import Encoder
    from gradir.synth import round_trip_filter
    from gradir.synth.records import as_rows, read_synthetic_queries
    from gradir.tables import write_table

    _check_retriever(retriever)
    start = time.perf_counter()
    loaded = load_collection(collection, lenient=lenient)
    records = read_synthetic_queries(queries)
    unknown = sorted({q.source_doc_id for q in records} - set(loaded.documents))
    if unknown:
        raise GradirError(f"{queries}: source_doc_id '{unknown[0]}' is not in {collection} ({len(unknown)} unknown)")
    encoder = Encoder(model, backend=backend, precision=precision) if retriever != "bm25" else None
    result = round_trip_filter(records, loaded.documents, top_k=top_k, retriever=retriever, encoder=encoder)
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
        _emit(summary, True)
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
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Mine candidate documents for each query: the pairs a grader will judge."""
    import time
    from dataclasses import asdict

    from gradir.collections import load_collection
    from gradir.collections.records import Query
    from gradir.encoding import Encoder
    from gradir.mining import mine_candidates
    from gradir.synth.records import read_synthetic_queries
    from gradir.tables import write_table

    _check_retriever(retriever)
    start = time.perf_counter()
    loaded = load_collection(collection, lenient=lenient)
    records = read_synthetic_queries(queries)
    encoder = Encoder(model, backend=backend, precision=precision) if retriever != "bm25" else None
    candidates = mine_candidates(
        {q.query_id: Query(q.query_id, q.text) for q in records},
        {q.query_id: q.source_doc_id for q in records if q.source_doc_id in loaded.documents},
        loaded.documents, retriever=retriever, top_k=top_k, skip_top=skip_top, keep_source=not exclude_source,
        absolute_margin=absolute_margin, relative_margin=relative_margin, encoder=encoder,
    )
    write_table(out, [asdict(c) for c in candidates])
    summary = {
        "written": len(candidates), "queries": len(records), "retriever": retriever,
        "out": str(out), "seconds": round(time.perf_counter() - start, 3),
    }
    if as_json:
        _emit(summary, True)
    else:
        err_console.print(f"wrote {len(candidates)} pairs for {len(records)} queries to {out}")


@app.command("grade")
def grade_command(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Judgments table to write (.parquet or .jsonl).")] = None,
    pairs: Annotated[Optional[Path], typer.Option("--pairs", "-p", help="Pairs from `gradir mine`, or synthetic documents for --grader level.")] = None,
    collection: Annotated[Optional[Path], typer.Option("--collection", "-c", help="The collection the pairs' documents come from.")] = None,
    grader: Annotated[str, typer.Option("--grader", help="likelihood (query likelihood), llm (grade tokens), cross-encoder, level, or unverified (source passage 3, other candidates 0).")] = "llm",
    llm: LLMOpt = "llamacpp",
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="Cross-encoder folder (--grader cross-encoder).")] = None,
    samples: Annotated[int, typer.Option("--samples", min=0, help="No logprobs: average K sampled answers instead.")] = 0,
    balance: Annotated[bool, typer.Option("--balance", help="Ask for more documents at under-represented middle grades.")] = False,
    budget: Annotated[int, typer.Option("--budget", min=0, help="LLM generations --balance may spend.")] = 100,
    against_qrels: Annotated[bool, typer.Option("--against-qrels", help="Grade judged pairs of --collection and report agreement with the human grades.")] = False,
    split: Annotated[str, typer.Option("--split", help="Qrels split for --against-qrels.")] = "test",
    sample: Annotated[int, typer.Option("--sample", min=1, help="Judged queries to check with --against-qrels.")] = 30,
    top_k: Annotated[int, typer.Option("--top-k", min=2, help="Base-retriever documents per query that --against-qrels grades and reranks.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed of pair sampling and generation.")] = 0,
    no_cache: NoCacheOpt = False,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    concurrency: ConcurrencyOpt = 8,
    timeout: TimeoutOpt = 60.0,
    max_retries: RetriesOpt = 4,
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Grade (query, document) pairs 0-3 into judgments, or check a grader against human qrels."""
    import time

    from gradir.grading.grade import GRADERS

    if grader not in GRADERS:
        raise GradirError(f"--grader: unknown grader '{grader}' (choose from {', '.join(GRADERS)})")
    start = time.perf_counter()
    if against_qrels:
        if collection is None:
            raise GradirError("--against-qrels needs --collection")
        if grader not in ("likelihood", "llm", "cross-encoder"):
            raise GradirError(f"--against-qrels checks the likelihood, llm or cross-encoder grader, not '{grader}'")
        summary = _grade_against_qrels(collection, split, sample, top_k, grader, llm, model, samples, no_cache,
                                       (api_key_env, concurrency, timeout, max_retries), lenient)
    else:
        if pairs is None or out is None:
            raise GradirError("grade needs --pairs and --out (or --against-qrels)")
        summary = _grade_pairs_file(pairs, out, collection, grader, llm, model, samples, balance, budget, seed,
                                    no_cache, (api_key_env, concurrency, timeout, max_retries), lenient)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    if as_json:
        _emit(summary, True)
    elif against_qrels:
        err_console.print(
            f"{summary['pairs']} pairs: Spearman {summary['spearman']:.3f}, weighted kappa {summary['weighted_kappa']:.3f}\n"
            f"confusion (rows: human grade, columns: grader): {summary['confusion']}"
        )
    else:
        err_console.print(f"wrote {summary['written']} judgments to {out}; grades {summary['histogram']}")


def _grade_pairs_file(pairs, out, collection, grader, llm, model, samples, balance, budget, seed, no_cache, server, lenient) -> dict:
    from dataclasses import asdict

    from gradir.collections import load_collection
    from gradir.grading.grade import grade_histogram, grade_pairs, read_pairs
    from gradir.grading.level import grade_by_level
    from gradir.judgments import write_judgments
    from gradir.synth.records import read_synthetic_documents
    from gradir.tables import write_table

    if grader == "level":
        judgments = grade_by_level(read_synthetic_documents(pairs))
        write_judgments(out, judgments)
        return {"written": len(judgments), "grader": "level", "histogram": grade_histogram(judgments), "out": str(out)}
    if collection is None:
        raise GradirError("--pairs needs --collection (the documents to grade)")
    loaded = load_collection(collection, lenient=lenient)
    pair_list = read_pairs(pairs, loaded.documents)
    client = _llm_client(llm, no_cache, *server) if grader in ("llm", "likelihood") else None
    try:
        result = grade_pairs(pair_list, loaded.documents, grader, client=client, cross_encoder=model, samples=samples)
        judgments = list(result.judgments)
        summary: dict = {"grader": grader, "histogram": result.histogram(), "mined_negatives": result.mined_negatives,
                         "relabelled_negatives": result.relabelled_negatives, "grade_failures": dict(result.failures)}
        if balance:
            if client is None:
                raise GradirError("--balance needs the llm grader")
            from gradir.grading.balance import balance_grades

            balanced = balance_grades(judgments, client, budget=budget, seed=seed)
            judgments += balanced.added
            documents_path = out.with_name(out.stem + ".documents" + out.suffix)
            write_table(documents_path, [asdict(d) for d in balanced.documents])
            summary["balance"] = {"generations": balanced.generations, "added": len(balanced.added),
                                  "asked": dict(balanced.asked), "came_back_at_level": dict(balanced.hit),
                                  "before": balanced.before, "after": balanced.after, "documents": str(documents_path)}
        write_judgments(out, judgments)
    finally:
        if client is not None:
            client.close()
    if client is not None:
        summary.update(_llm_summary(client, len(judgments), out, 0.0))
    summary.update(written=len(judgments), out=str(out))
    return summary


def _grade_against_qrels(collection, split, sample, top_k, grader, llm, model, samples, no_cache, server, lenient) -> dict:
    from gradir.collections import load_collection
    from gradir.encoding import Encoder
    from gradir.grading.check import check_against_qrels
    from gradir.grading.grade import grade_pairs

    loaded = load_collection(collection, lenient=lenient)
    client = _llm_client(llm, no_cache, *server) if grader in ("llm", "likelihood") else None
    try:
        summary = check_against_qrels(
            loaded, split,
            lambda pairs: grade_pairs(pairs, loaded.documents, grader, client=client, cross_encoder=model, samples=samples),
            queries=sample, top_k=top_k, encoder=Encoder(cache_dir=False if no_cache else None),
        )
    finally:
        if client is not None:
            client.close()
    summary = {"collection": str(collection), "split": split, "grader": grader, **summary}
    if client is not None:
        summary.update(llm_calls=client.counts.llm_calls, cache_hits=client.counts.cache_hits, failed=client.counts.failed)
    return summary


JudgmentsOpt = Annotated[Path, typer.Option("--judgments", "-j", help="Judgments table (.parquet or .jsonl).")]
TrainOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder of the trained model.")]
BaseModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Base model folder; default all-MiniLM-L6-v2.")]
EpochsOpt = Annotated[float, typer.Option("--epochs", min=0.0, help="Passes over the training set.")]
MaxStepsOpt = Annotated[int, typer.Option("--max-steps", help="Stop after this many steps (-1: no limit).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Queries per step and process.")]
LrOpt = Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate (linear warm-up over 10%).")]
ListSizeOpt = Annotated[int, typer.Option("--list-size", min=1, help="Documents per query in each example.")]
ThresholdOpt = Annotated[int, typer.Option("--threshold", min=0, help="Lowest grade that counts as a positive; 0: half the judgments' top grade, rounded up (2 of 0-3, 1 of binary qrels).")]


def _read_query_groups(path: Path) -> dict[str, str]:
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GradirError(f"{path}: cannot read the query groups ({error})") from None
    if not isinstance(groups, dict):
        raise GradirError(f"{path}: expected a JSON object of query id -> group")
    return {str(k): str(v) for k, v in groups.items()}


def parse_loss_options(pairs: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` strings as loss keyword arguments: numbers where they parse, else strings."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise GradirError(f"--loss-option '{pair}': expected KEY=VALUE, e.g. form=emd")
        try:
            options[key.strip()] = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            options[key.strip()] = value
    return options
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of sampling, shuffling and initialisation.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in OUT.")]


@app.command("train")
def train_command(
    judgments: JudgmentsOpt,
    collection: CollectionOpt,
    loss: Annotated[str, typer.Option("--loss", help="infonce, bixse, wasserstein, listwise_kl or margin_mse.")],
    out: TrainOutOpt,
    model: BaseModelOpt = None,
    epochs: EpochsOpt = 1.0,
    max_steps: MaxStepsOpt = -1,
    batch_size: BatchOpt = 32,
    lr: LrOpt = 2e-5,
    list_size: ListSizeOpt = 4,
    threshold: ThresholdOpt = DEFAULT_THRESHOLD,
    mini_batch_size: Annotated[Optional[int], typer.Option("--mini-batch-size", min=1, help="GradCache: embed in mini-batches of this size, so a large batch fits in little memory.")] = None,
    save_steps: Annotated[int, typer.Option("--save-steps", min=1, help="Checkpoint every this many steps.")] = 50,
    max_seq_length: Annotated[Optional[int], typer.Option("--max-seq-length", min=1, help="Token limit while training (the saved model keeps its own).")] = None,
    dev_split: Annotated[Optional[str], typer.Option("--dev-split", help="Evaluate the trained model on this split.")] = None,
    loss_option: Annotated[Optional[list[str]], typer.Option("--loss-option", help="KEY=VALUE passed to the loss, e.g. form=emd for wasserstein (repeatable).")] = None,
    loss_lr: Annotated[float, typer.Option("--loss-lr", min=0.0, help="Learning rate of the loss's own parameters (BiXSE scale and bias).")] = DEFAULT_LOSS_LEARNING_RATE,
    validation_share: Annotated[float, typer.Option("--validation-share", min=0.0, max=0.9, help="Share of the query groups held out to choose among base, epochs and interpolations (0: none).")] = DEFAULT_VALIDATION_SHARE,
    validation_documents: Annotated[int, typer.Option("--validation-documents", min=10, help="Documents the validation queries search (all judged ones included).")] = DEFAULT_VALIDATION_DOCUMENTS,
    query_groups: Annotated[Optional[Path], typer.Option("--query-groups", help="JSON object: query id -> group (e.g. source passage); a group is held out whole.")] = None,
    documents: Annotated[Optional[Path], typer.Option("--documents", help="Synthetic documents the judgments name besides the corpus (a corpus-format file).")] = None,
    seed: SeedOpt = 0,
    resume: ResumeOpt = False,
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a bi-encoder on graded judgments with one of gradir's losses."""
    from gradir.collections import load_collection
    from gradir.losses import LOSSES
    from gradir.training import TrainSettings, train

    if loss not in LOSSES:
        raise GradirError(f"--loss: unknown loss '{loss}' (choose from {', '.join(LOSSES)})")
    loaded = load_collection(collection, lenient=lenient)
    settings = TrainSettings(epochs, max_steps, batch_size, lr, list_size, threshold, seed, mini_batch_size, save_steps,
                             max_seq_length, loss_learning_rate=loss_lr, validation_share=validation_share,
                             validation_documents=validation_documents)
    extra = None
    if documents is not None:
        from gradir.collections import load_corpus
        from gradir.collections.problems import ProblemLog

        extra = load_corpus(documents, ProblemLog(lenient=lenient))
    result = train(judgments, loaded, loss, out, model=model, settings=settings, dev_split=dev_split, resume=resume,
                   extra_documents=extra, loss_options=parse_loss_options(loss_option or []),
                   query_groups=_read_query_groups(query_groups) if query_groups else None)
    _finish_training(result, loaded.log.summary(), as_json)


@app.command("train-reranker")
def train_reranker_command(
    judgments: JudgmentsOpt,
    collection: CollectionOpt,
    loss: Annotated[str, typer.Option("--loss", help="lce (positive vs hard negatives) or bce (graded soft labels).")],
    out: TrainOutOpt,
    model: BaseModelOpt = None,
    epochs: EpochsOpt = 1.0,
    max_steps: MaxStepsOpt = -1,
    batch_size: BatchOpt = 16,
    lr: LrOpt = 2e-5,
    list_size: ListSizeOpt = 4,
    threshold: ThresholdOpt = DEFAULT_THRESHOLD,
    seed: SeedOpt = 0,
    resume: ResumeOpt = False,
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a cross-encoder reranker on graded judgments with LCE or graded BCE."""
    from gradir.collections import load_collection
    from gradir.losses import RERANKER_LOSSES
    from gradir.training import TrainSettings, train_reranker

    if loss not in RERANKER_LOSSES:
        raise GradirError(f"--loss: unknown reranker loss '{loss}' (choose from {', '.join(RERANKER_LOSSES)})")
    loaded = load_collection(collection, lenient=lenient)
    settings = TrainSettings(epochs, max_steps, batch_size, lr, list_size, threshold, seed)
    result = train_reranker(judgments, loaded, loss, out, model=model, settings=settings, resume=resume)
    _finish_training(result, loaded.log.summary(), as_json)


def _finish_training(result, skipped: dict[str, int], as_json: bool) -> None:
    from gradir.training.train import is_main_process

    if not is_main_process():
        return  # one summary per run, from rank 0
    report_skipped(skipped)
    if as_json:
        _emit(result.summary(), True)
    else:
        err_console.print(
            f"trained {result.loss} for {result.steps} steps in {result.seconds:.0f} s; model in {result.model_path}"
        )


@app.command("run")
def run_command(
    config: Annotated[Optional[Path], typer.Argument(help="Pipeline config (TOML); see `gradir init`.")] = None,
    collection: Annotated[Optional[Path], typer.Option("--collection", "-c", help="BEIR folder (overrides run.collection).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory; default runs/<collection name>.")] = None,
    lenient: Annotated[bool, typer.Option("--lenient", help="Skip bad records and report them (sets run.lenient).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (LLM calls, steps, time on this machine) and stop.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the pipeline: sample, generate, filter, documents, mine, grade, train, evaluate, report.

    A stage whose inputs and settings are unchanged is skipped; an interrupted run resumes.
    """
    from gradir.pipeline import PipelineConfig, load_config, run_pipeline

    if config is None and collection is None:
        raise GradirError("give a config file (see `gradir init`) or --collection")
    settings = load_config(config) if config is not None else PipelineConfig()
    if collection is not None:
        settings.run.collection = str(collection.resolve())
    settings.run.lenient = settings.run.lenient or lenient
    target = out or Path("runs") / Path(settings.collection_path()).name
    result = run_pipeline(settings, target, dry_run=dry_run)
    summary = result.summary()
    if as_json:
        _emit(summary, True)
        return
    if dry_run:
        return
    evaluation = summary["stages"]["evaluate"]["summary"]
    _print_base_tuned(evaluation)
    err_console.print(f"report: {target / 'report.html'} (and report.md)")


def _print_base_tuned(evaluation: dict) -> None:
    from rich.table import Table

    table = Table(title=f"base against tuned ({evaluation['queries']} queries)")
    for column in ("metric", "base", "tuned", "Δ"):
        table.add_column(column)
    for metric in ("ndcg@10", "recall@100"):
        base, tuned = evaluation[metric]["base"], evaluation[metric]["tuned"]
        table.add_row(metric, f"{base:.4f}", f"{tuned:.4f}", f"{tuned - base:+.4f}")
    from rich.console import Console

    Console().print(table)
    err_console.print(f"paired randomisation test on nDCG@10: p = {evaluation['p_ndcg@10']:.4f}")


@app.command("status")
def status_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by `gradir run`.")],
    config: Annotated[Optional[Path], typer.Option("--config", help="Judge staleness against this config (default: the run's last one).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show each stage of a run as done, stale, interrupted or pending, with counts and times."""
    from gradir.pipeline import load_config, stage_statuses
    from gradir.pipeline.rundir import CONFIG, RunDirectory

    if not (run_dir / CONFIG).is_file():
        raise GradirError(f"{run_dir}: not a gradir run directory (no {CONFIG})")
    statuses = stage_statuses(RunDirectory(run_dir), load_config(config or run_dir / CONFIG))
    if as_json:
        _emit({"run": str(run_dir), "stages": [s.__dict__ for s in statuses]}, True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(run_dir))
    for column in ("stage", "status", "seconds", "finished", "counts"):
        table.add_column(column)
    colours = {"done": "green", "stale": "yellow", "interrupted": "red", "pending": "dim"}
    for s in statuses:
        counts = ", ".join(
            f"{k} {round(v, 4)}" for k, v in s.summary.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seconds"
        )
        table.add_row(s.name, f"[{colours[s.status]}]{s.status}[/]", "" if s.seconds is None else f"{s.seconds:.1f}",
                      s.finished or "", counts)
    Console().print(table)


@app.command("init")
def init_command(
    path: Annotated[Path, typer.Argument(help="Config file to write.")] = Path("gradir.toml"),
    collection: Annotated[Optional[Path], typer.Option("--collection", "-c", help="BEIR folder to put in run.collection.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config with every setting and its default."""
    from gradir.atomic import write_text_atomic
    from gradir.pipeline import PipelineConfig, render_config

    if path.exists() and not force:
        raise GradirError(f"{path}: already exists (use --force to overwrite)")
    config = PipelineConfig()
    if collection is not None:
        if not collection.exists():
            raise GradirError(f"--collection: {collection}: no such folder")
        config.run.collection = os.path.relpath(collection.resolve(), path.resolve().parent)
    write_text_atomic(path, render_config(config))
    err_console.print(f"wrote {path}; edit it, then: gradir run {path}")


def main() -> None:
    """Entry point: run the app, turning expected errors into a message and exit code 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # One progress bar per long step (gradir's own) and no library chatter on stderr.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    try:
        app()
    except GradirError as exc:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
