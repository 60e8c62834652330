"""The grade command: judgments from mined pairs, or a grader checked against human qrels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gradir.cli.common import (
    ApiKeyEnvOpt,
    ConcurrencyOpt,
    JsonOpt,
    LLMOpt,
    LenientOpt,
    NoCacheOpt,
    RetriesOpt,
    TimeoutOpt,
    app,
    emit,
    llm_client,
)
from gradir.console import err_console
from gradir.errors import GradirError


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
    source_floor: Annotated[int, typer.Option("--source-floor", min=0, max=3, help="Grade the passage a query was written from at least this (0: trust the grader; `gradir run` uses 3).")] = 0,
    retriever_weight: Annotated[float, typer.Option("--retriever-weight", min=0.0, max=1.0, help="likelihood: fuse with the pairs' retriever scores (`score`) at this weight.")] = 0.3,
    bm25_weight: Annotated[float, typer.Option("--bm25-weight", min=0.0, max=1.0, help="likelihood: fuse with the pairs' BM25 scores (`bm25_score`) at this weight; both 0: the likelihood alone.")] = 0.3,
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

    from gradir.collections import load_collection
    from gradir.grading.grade import GRADERS
    from gradir.grading.stage import LLM_GRADERS
    from gradir.pipeline.config import GradeSection

    if grader not in GRADERS:
        raise GradirError(f"--grader: unknown grader '{grader}' (choose from {', '.join(GRADERS)})")
    if against_qrels and collection is None:
        raise GradirError("--against-qrels needs --collection")
    if against_qrels and grader not in ("likelihood", "llm", "cross-encoder"):
        raise GradirError(f"--against-qrels checks the likelihood, llm or cross-encoder grader, not '{grader}'")
    if not against_qrels and (pairs is None or out is None):
        raise GradirError("grade needs --pairs and --out (or --against-qrels)")
    if not against_qrels and grader != "level" and collection is None:
        raise GradirError("--pairs needs --collection (the documents to grade)")
    if balance and grader not in LLM_GRADERS:
        raise GradirError("--balance needs the llm grader")
    if retriever_weight + bm25_weight > 1:
        raise GradirError(f"--retriever-weight {retriever_weight} + --bm25-weight {bm25_weight} is more than 1 "
                          "(the likelihood's weight is 1 minus both)")
    start = time.perf_counter()
    settings = GradeSection(grader=grader, cross_encoder=str(model or ""), samples=samples, balance=balance,
                            budget=budget, source_floor=source_floor, retriever_weight=retriever_weight,
                            bm25_weight=bm25_weight)
    if grader not in LLM_GRADERS:
        client = None
    else:
        client = llm_client(llm, no_cache, api_key_env, concurrency, timeout, max_retries)
    try:
        loaded = load_collection(collection, lenient=lenient) if collection is not None else None
        if against_qrels:
            from gradir.retrieval.encoding import Encoder
            from gradir.grading.check import check_against_qrels
            from gradir.grading.stage import pair_grader

            checked = check_against_qrels(loaded, split, pair_grader(settings, loaded.documents, client), queries=sample,
                                          top_k=top_k, encoder=Encoder(cache_dir=False if no_cache else None))
            summary = {"collection": str(collection), "split": split, "grader": grader, **checked}
        else:
            summary = _grade_pairs_file(pairs, out, loaded, settings, client, seed)
    finally:
        if client is not None:
            client.close()
    if client is not None:
        summary.update(client.usage_since())
    summary["seconds"] = round(time.perf_counter() - start, 3)
    if as_json:
        emit(summary, True)
    elif against_qrels:
        err_console.print(
            f"{summary['pairs']} pairs: Spearman {summary['spearman']:.3f}, weighted kappa {summary['weighted_kappa']:.3f}\n"
            f"confusion (rows: human grade, columns: grader): {summary['confusion']}"
        )
    else:
        err_console.print(f"wrote {summary['written']} judgments to {out}; grades {summary['histogram']}")


def _grade_pairs_file(pairs: Path, out: Path, collection, settings, client, seed: int) -> dict:
    """``gradir grade --pairs``: the pipeline's grade stage on a pairs table (or synthetic documents for ``level``)."""
    from gradir.grading.grade import grade_histogram, read_pairs
    from gradir.grading.level import grade_by_level
    from gradir.grading.stage import grade_stage
    from gradir.grading.judgments import write_judgments
    from gradir.synth.records import read_synthetic_documents
    from gradir.tables import write_table

    if settings.grader == "level":
        judgments = grade_by_level(read_synthetic_documents(pairs))
        write_judgments(out, judgments)
        return {"written": len(judgments), "grader": "level", "histogram": grade_histogram(judgments), "out": str(out)}
    graded = grade_stage(read_pairs(pairs, collection.documents), collection.documents, settings, client, client, seed=seed)
    if settings.balance:
        documents_path = out.with_name(out.stem + ".documents" + out.suffix)
        write_table(documents_path, graded.balance_documents)
        graded.summary["balance"]["documents"] = str(documents_path)
    write_judgments(out, graded.judgments)
    return {**graded.summary, "out": str(out)}


