"""Commands that read a collection and a model: eval, compare, check, judgments from-qrels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gradir.cli.common import (
    BackendOpt,
    CollectionOpt,
    JsonOpt,
    LenientOpt,
    PrecisionOpt,
    SplitOpt,
    app,
    check_retriever,
    emit,
)
from gradir.collections.problems import report_skipped
from gradir.console import err_console
from gradir.errors import GradirError
from gradir.retrieval.runtimes import DEFAULT_BACKEND, DEFAULT_PRECISION


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
    from gradir.retrieval.encoding import Encoder
    from gradir.evaluation import evaluate

    check_retriever(retriever)
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
        emit(summary, True)
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
        emit(result.as_dict(), True)
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
        emit(result, True)
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
    from gradir.grading.judgments import judgments_from_qrels, write_judgments

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
        emit(result, True)
    else:
        err_console.print(f"wrote {result['written']} judgments of {result['queries']} queries to {out}")

