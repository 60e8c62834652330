"""The grade command: judgments from mined pairs, or a grader checked against human qrels."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from gradir.cli.common import LLM_CONNECTION, JSON, LENIENT, SEED, app, emit, llm_client, section_from
from gradir.cli.options import Options, command, option, section_option
from gradir.pipeline.config import GradeSection
from gradir.console import err_console
from gradir.errors import GradirError


@command(
    app, "grade",
    option("out", Optional[Path], "--out", "-o", default=None, help="Judgments table to write (.parquet or .jsonl)."),
    option("pairs", Optional[Path], "--pairs", "-p", default=None, help="Pairs from `gradir mine`, or synthetic documents for --grader level."),
    option("collection", Optional[Path], "--collection", "-c", default=None, help="The collection the pairs' documents come from."),
    option("grader", str, "--grader", default="llm", help="likelihood (query likelihood), llm (grade tokens), cross-encoder, level, or unverified (source passage 3, other candidates 0)."),
    option("model", Optional[Path], "--model", "-m", default=None, help="Cross-encoder folder (--grader cross-encoder)."),
    section_option(GradeSection, "samples", int, "--samples", min=0, help="No logprobs: average K sampled answers instead."),
    section_option(GradeSection, "balance", bool, "--balance", help="Ask for more documents at under-represented middle grades."),
    section_option(GradeSection, "budget", int, "--budget", min=0, help="LLM generations --balance may spend."),
    option("against_qrels", bool, "--against-qrels", default=False, help="Grade judged pairs of --collection and report agreement with the human grades."),
    option("split", str, "--split", default="test", help="Qrels split for --against-qrels."),
    option("sample", int, "--sample", default=30, min=1, help="Judged queries to check with --against-qrels."),
    option("top_k", int, "--top-k", default=10, min=2, help="Base-retriever documents per query that --against-qrels grades and reranks."),
    option("source_floor", int, "--source-floor", default=0, min=0, max=3, help="Grade the passage a query was written from at least this (0: trust the grader; `gradir run` uses 3)."),
    section_option(GradeSection, "retriever_weight", float, "--retriever-weight", min=0.0, max=1.0, help="likelihood: fuse with the pairs' retriever scores (`score`) at this weight."),
    section_option(GradeSection, "bm25_weight", float, "--bm25-weight", min=0.0, max=1.0, help="likelihood: fuse with the pairs' BM25 scores (`bm25_score`) at this weight; both 0: the likelihood alone."),
    SEED, LLM_CONNECTION, LENIENT, JSON,
)
def grade_command(o: Options) -> None:
    """Grade (query, document) pairs 0-3 into judgments, or check a grader against human qrels."""
    import time

    from gradir.collections import load_collection
    from gradir.grading.grade import GRADERS
    from gradir.grading.stage import LLM_GRADERS

    if o.grader not in GRADERS:
        raise GradirError(f"--grader: unknown grader '{o.grader}' (choose from {', '.join(GRADERS)})")
    if o.against_qrels and o.collection is None:
        raise GradirError("--against-qrels needs --collection")
    if o.against_qrels and o.grader not in ("likelihood", "llm", "cross-encoder"):
        raise GradirError(f"--against-qrels checks the likelihood, llm or cross-encoder grader, not '{o.grader}'")
    if not o.against_qrels and (o.pairs is None or o.out is None):
        raise GradirError("grade needs --pairs and --out (or --against-qrels)")
    if not o.against_qrels and o.grader != "level" and o.collection is None:
        raise GradirError("--pairs needs --collection (the documents to grade)")
    if o.balance and o.grader != "llm":
        # The documents balancing writes are graded by the LLM grader's prompt (grading/balance.py),
        # so other graders would mix two teachers' labels; the config rule (grade.balance) is the same.
        raise GradirError(f"--balance needs --grader llm, not '{o.grader}'")
    if o.retriever_weight + o.bm25_weight > 1:
        raise GradirError(f"--retriever-weight {o.retriever_weight} + --bm25-weight {o.bm25_weight} is more than 1 "
                          "(the likelihood's weight is 1 minus both)")
    start = time.perf_counter()
    settings = section_from(
        GradeSection, grader=o.grader, cross_encoder=str(o.model or ""), samples=o.samples, balance=o.balance,
        budget=o.budget, source_floor=o.source_floor, retriever_weight=o.retriever_weight, bm25_weight=o.bm25_weight,
    )
    if o.grader not in LLM_GRADERS:
        client = None
    else:
        client = llm_client(o)
    try:
        loaded = load_collection(o.collection, lenient=o.lenient) if o.collection is not None else None
        if o.against_qrels:
            from gradir.retrieval.encoding import Encoder
            from gradir.grading.check import check_against_qrels
            from gradir.grading.stage import pair_grader

            checked = check_against_qrels(loaded, o.split, pair_grader(settings, loaded.documents, client), queries=o.sample,
                                          top_k=o.top_k, encoder=Encoder(cache_dir=False if o.no_cache else None))
            summary = {"collection": str(o.collection), "split": o.split, "grader": o.grader, **checked}
        else:
            summary = _grade_pairs_file(o, loaded, settings, client)
    finally:
        if client is not None:
            client.close()
    if client is not None:
        summary.update(client.usage_since())
    summary["seconds"] = round(time.perf_counter() - start, 3)
    if o.as_json:
        emit(summary, True)
    elif o.against_qrels:
        err_console.print(
            f"{summary['pairs']} pairs: Spearman {summary['spearman']:.3f}, weighted kappa {summary['weighted_kappa']:.3f}\n"
            f"confusion (rows: human grade, columns: grader): {summary['confusion']}"
        )
    else:
        err_console.print(f"wrote {summary['written']} judgments to {o.out}; grades {summary['histogram']}")


def _grade_pairs_file(o: Options, collection, settings: GradeSection, client) -> dict:
    """``gradir grade --pairs``: the pipeline's grade stage on a pairs table (or synthetic documents for ``level``)."""
    from gradir.grading.grade import read_pairs
    from gradir.grading.stage import grade_by_level_to_file, grade_to_files
    from gradir.synth.records import read_synthetic_documents

    if settings.grader == "level":
        return {**grade_by_level_to_file(read_synthetic_documents(o.pairs), o.out), "out": str(o.out)}
    balance_out = o.out.with_name(o.out.stem + ".documents" + o.out.suffix)
    summary = grade_to_files(read_pairs(o.pairs, collection.documents), collection.documents, settings, client, client,
                             o.seed, o.out, balance_out)
    return {**summary, "out": str(o.out)}
