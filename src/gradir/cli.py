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

from gradir.console import err_console
from gradir.errors import GradirError

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


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")


def _report_skipped(summary: dict[str, int]) -> None:
    if summary:
        parts = ", ".join(f"{count} {kind}" for kind, count in sorted(summary.items()))
        err_console.print(f"[yellow]lenient: skipped {sum(summary.values())} bad record(s): {parts}[/yellow]")


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
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a retriever on a collection: nDCG@10, Recall@100, MRR@10, MAP@100."""
    from gradir.collections import load_collection
    from gradir.encoding import Encoder
    from gradir.evaluation import evaluate
    from gradir.retrieval.search import RETRIEVERS

    if retriever not in RETRIEVERS:
        raise GradirError(f"--retriever: unknown retriever '{retriever}' (choose from {', '.join(RETRIEVERS)})")
    loaded = load_collection(collection, lenient=lenient)
    encoder = None
    if retriever != "bm25":
        encoder = Encoder(
            model,
            cache_dir=False if no_cache else cache_dir,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
        )
    result = evaluate(loaded, split=split, retriever=retriever, encoder=encoder, top_k=top_k)
    if out is not None:
        result.save(out)
    _report_skipped(loaded.log.summary())
    summary = result.summary()
    summary["skipped"] = loaded.log.summary()
    if as_json:
        _emit(summary, True)
    else:
        _print_metrics(result.metrics, f"{loaded.name} / {split} / {retriever}")
        if out is not None:
            err_console.print(f"wrote {out}/metrics.json, per_query.tsv, run.trec")


def _print_metrics(metrics: dict[str, float], title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for name in metrics:
        table.add_column(name, justify="right")
    table.add_row(*(f"{v:.4f}" for v in metrics.values()))
    from rich.console import Console

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
    _report_skipped(loaded.log.summary())
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
    _report_skipped(loaded.log.summary())
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
    _report_skipped(loaded.log.summary())
    if as_json:
        _emit(result, True)
    else:
        err_console.print(f"wrote {result['written']} judgments of {result['queries']} queries to {out}")


JudgmentsOpt = Annotated[Path, typer.Option("--judgments", "-j", help="Judgments table (.parquet or .jsonl).")]
TrainOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder of the trained model.")]
BaseModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Base model folder; default all-MiniLM-L6-v2.")]
EpochsOpt = Annotated[float, typer.Option("--epochs", min=0.0, help="Passes over the training set.")]
MaxStepsOpt = Annotated[int, typer.Option("--max-steps", help="Stop after this many steps (-1: no limit).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Queries per step and process.")]
LrOpt = Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate (linear warm-up over 10%).")]
ListSizeOpt = Annotated[int, typer.Option("--list-size", min=1, help="Documents per query in each example.")]
ThresholdOpt = Annotated[int, typer.Option("--threshold", help="Lowest grade that counts as a positive.")]
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
    threshold: ThresholdOpt = 1,
    mini_batch_size: Annotated[Optional[int], typer.Option("--mini-batch-size", min=1, help="GradCache: embed in mini-batches of this size, so a large batch fits in little memory.")] = None,
    dev_split: Annotated[Optional[str], typer.Option("--dev-split", help="Evaluate the trained model on this split.")] = None,
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
    settings = TrainSettings(epochs, max_steps, batch_size, lr, list_size, threshold, seed, mini_batch_size)
    result = train(judgments, loaded, loss, out, model=model, settings=settings, dev_split=dev_split, resume=resume)
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
    threshold: ThresholdOpt = 1,
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
    _report_skipped(skipped)
    if as_json:
        _emit(result.summary(), True)
    else:
        err_console.print(
            f"trained {result.loss} for {result.steps} steps in {result.seconds:.0f} s; model in {result.model_path}"
        )


def main() -> None:
    """Entry point: run the app, turning expected errors into a message and exit code 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
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
