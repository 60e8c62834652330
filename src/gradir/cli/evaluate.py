"""Commands that read a collection and a model: eval, compare, check, judgments from-qrels."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gradir.cli.common import COLLECTION, ENCODING_RUNTIME, JSON, LENIENT, SPLIT, app, check_retriever, emit, say, timed
from gradir.cli.options import Options, argument, command, option
from gradir.collections.problems import report_skipped
from gradir.console import err_console
from gradir.errors import GradirError


@command(
    app, "eval", COLLECTION,
    option("model", Optional[str], "--model", "-m", default=None, help="Local sentence-transformers model; default all-MiniLM-L6-v2."),
    SPLIT,
    option("retriever", str, "--retriever", default="dense", help="dense, bm25 or hybrid (dense + BM25, RRF)."),
    option("top_k", int, "--top-k", default=100, min=1, help="Documents retrieved per query."),
    option("out", Optional[Path], "--out", "-o", default=None, help="Write metrics.json, per_query.tsv and run.trec here."),
    option("batch_size", int, "--batch-size", default=32, min=1, help="Texts per forward pass."),
    option("max_seq_length", Optional[int], "--max-seq-length", default=None, min=1, help="Token limit; default the model's."),
    option("cache_dir", Optional[Path], "--cache-dir", default=None, help="Embedding cache; default $GRADIR_CACHE_DIR or ~/.cache/gradir."),
    option("no_cache", bool, "--no-cache", default=False, help="Do not read or write the embedding cache."),
    ENCODING_RUNTIME, LENIENT, JSON,
)
def eval_command(o: Options) -> None:
    """Evaluate a retriever on a collection: nDCG@10, Recall@100, MRR@10, MAP@100."""
    from gradir.collections import load_collection
    from gradir.retrieval.encoding import Encoder
    from gradir.evaluation import evaluate

    check_retriever(o.retriever)
    loaded = load_collection(o.collection, lenient=o.lenient)
    encoder = None
    if o.retriever != "bm25":
        encoder = Encoder(
            o.model,
            cache_dir=False if o.no_cache else o.cache_dir,
            batch_size=o.batch_size,
            max_seq_length=o.max_seq_length,
            backend=o.backend,
            precision=o.precision,
        )
    result = evaluate(loaded, split=o.split, retriever=o.retriever, encoder=encoder, top_k=o.top_k)
    if o.out is not None:
        result.save(o.out)
    report_skipped(loaded.log.summary())
    summary = result.summary()
    summary["skipped"] = loaded.log.summary()
    if o.as_json:
        emit(summary, True)
    else:
        _print_metrics(result.metrics, f"{loaded.name} / {o.split} / {o.retriever}")
        if o.out is not None:
            err_console.print(f"wrote {o.out}/metrics.json, per_query.tsv, run.trec")


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


@command(
    app, "compare",
    argument("run_a", Path, help="Run file (or an eval --out folder) of system A, the baseline."),
    argument("run_b", Path, help="Run file (or an eval --out folder) of system B."),
    COLLECTION, SPLIT,
    option("metric", str, "--metric", default="ndcg@10", help="ndcg@10, recall@100, mrr@10 or map@100."),
    option("resamples", int, "--resamples", default=10_000, min=100, help="Randomisation-test resamples."),
    option("seed", int, "--seed", default=0, help="Seed of the randomisation test."),
    LENIENT, JSON,
)
def compare_command(o: Options) -> None:
    """Per-query wins and losses of B against A, with a paired t-test and a randomisation test."""
    from gradir.collections import load_collection
    from gradir.evaluation import METRICS, compare_per_query, read_run, score_run

    if o.metric not in METRICS:
        raise GradirError(f"--metric: unknown metric '{o.metric}' (choose from {', '.join(METRICS)})")
    loaded = load_collection(o.collection, lenient=o.lenient)
    qrels = loaded.qrels(o.split)
    _, per_a = score_run(qrels, read_run(_resolve_run_path(o.run_a), loaded.log))
    _, per_b = score_run(qrels, read_run(_resolve_run_path(o.run_b), loaded.log))
    result = compare_per_query(per_a, per_b, metric=o.metric, resamples=o.resamples, seed=o.seed)
    report_skipped(loaded.log.summary())
    if o.as_json:
        emit(result.as_dict(), True)
        return
    from rich.console import Console

    Console().print(
        f"{o.metric} over {result.queries} queries: A {result.mean_a:.4f}, B {result.mean_b:.4f}, "
        f"B - A {result.delta:+.4f}\n"
        f"B wins {result.wins}, loses {result.losses}, ties {result.ties}\n"
        f"paired t-test p = {result.p_ttest:.4g} (t = {result.t_statistic:.3f}); "
        f"randomisation test p = {result.p_randomization:.4g}"
    )


@command(app, "check", COLLECTION, LENIENT, JSON)
def check_command(o: Options) -> None:
    """Validate a collection: the corpus, the queries and every qrels split."""
    from gradir.collections import load_collection

    loaded = load_collection(o.collection, lenient=o.lenient)
    splits = {split: sum(len(d) for d in loaded.qrels(split).values()) for split in loaded.splits()}
    result = {
        "collection": str(o.collection),
        "documents": len(loaded.documents),
        "queries": len(loaded.queries),
        "judgments": splits,
        "skipped": loaded.log.summary(),
        "problems": [str(p) for p in loaded.log.problems[:100]],
    }
    report_skipped(loaded.log.summary())
    judged = ", ".join(f"{s}: {n}" for s, n in splits.items()) or "no qrels"
    say(o, result, f"{o.collection}: {len(loaded.documents)} documents, {len(loaded.queries)} queries, judgments {judged}")


judgments_app = typer.Typer(help="Make judgments tables (the supervision of the graded losses).", no_args_is_help=True)
app.add_typer(judgments_app, name="judgments")


@command(
    judgments_app, "from-qrels", COLLECTION,
    option("out", Path, "--out", "-o", help="Judgments table to write (.parquet or .jsonl)."),
    option("split", str, "--split", default="train", help="Which qrels split to turn into judgments."),
    option("max_queries", Optional[int], "--max-queries", default=None, min=1, help="Sample this many queries (seeded)."),
    option("negatives", int, "--negatives", default=0, min=0, help="Mined unjudged negatives per query, added as grade 0."),
    option("retriever", str, "--retriever", default="dense", help="Retriever that mines the negatives: dense, bm25 or hybrid."),
    option("seed", int, "--seed", default=0, help="Seed of the query and negative sampling."),
    option("top_grade", Optional[int], "--top-grade", default=None, min=1,
           help="The grade that means p_relevant 1 (default: the split's highest; NFCorpus train: give 2)."),
    LENIENT, JSON,
)
def judgments_from_qrels_command(o: Options) -> None:
    """Turn human graded qrels into a judgments table (p_relevant = grade / top grade)."""
    from collections import Counter

    from gradir.collections import load_collection
    from gradir.grading.judgments import judgments_from_qrels, write_judgments

    def make() -> dict:
        judgments = judgments_from_qrels(
            loaded, o.split, max_queries=o.max_queries, negatives=o.negatives, retriever=o.retriever, seed=o.seed,
            top_grade=o.top_grade,
        )
        write_judgments(o.out, judgments)
        return {"written": len(judgments), "queries": len({j.query_id for j in judgments}),
                "grades": dict(sorted(Counter(str(j.grade) for j in judgments).items()))}

    loaded = load_collection(o.collection, lenient=o.lenient)
    result = timed(make, o.out)
    report_skipped(loaded.log.summary())
    say(o, result, f"wrote {result['written']} judgments of {result['queries']} queries to {o.out}")
