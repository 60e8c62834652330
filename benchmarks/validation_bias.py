"""How much does judging only the base model's candidates bias the validation towards the base?

On an unlabelled collection the held-out queries' qrels are the teacher's grades of the
*mined* candidates: the base model's top k. A document outside that pool counts as
non-relevant, so a tuned model that brings other documents into its top 10 is scored as if
they were wrong, even when they are not (the pooling bias of incomplete judgments; Buckley
& Voorhees, SIGIR 2004). This script measures the bias where the truth is known: on
NFCorpus, whose held-out queries carry human grades for far more documents than any
pool. For each finished run of ``benchmarks/losses_nfcorpus.py`` (its model and seed) it
rebuilds that seed's held-out queries and scores the base and the run's model under

- ``full``: the human qrels of the held-out queries (what those runs' selection used),
  searched over the whole corpus; ``full, condensed``: the same with condensed lists (below);
- ``pool``: only the base model's top ``--pool-depth`` documents of each query are judged
  (their human grade, else 0), as the pipeline's mining and grading leave them; unjudged
  documents count as non-relevant (standard nDCG@10, trec_eval's reading);
- ``pool, condensed``: the same judgments, unjudged documents removed from each ranking
  before the cut at 10 (condensed lists: Sakai, SIGIR 2007);
- ``pool + BM25``: the pool widened by BM25's top ``--pool-depth`` (a second,
  independent system in the pool, as TREC pools several runs); standard nDCG@10.

Rows: each run's gain over the base (Δ = model − base on the same queries) under each
reading and on the test split. The last lines give, per reading, the mean of
(Δ reading − Δ full): the bias (negative: the reading understates the tuned model), and the
Spearman rank correlation of Δ reading with Δ test over the runs. Nothing is trained; each
model encodes the corpus once into the embedding cache (about 2 minutes a model on 2 cores),
so a second run takes about 2 minutes for 8 models.

    .venv/bin/python benchmarks/validation_bias.py WORK [WORK ...] [--pool-depth 10]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gradir.collections import load_collection  # noqa: E402
from gradir.collections.records import Query  # noqa: E402
from gradir.evaluation.metrics import score_run  # noqa: E402
from gradir.grading.judgments import read_judgments  # noqa: E402
from gradir.retrieval.encoding import Encoder  # noqa: E402
from gradir.retrieval.run import top_ranked  # noqa: E402
from gradir.retrieval.search import search  # noqa: E402
from gradir.training.validation import hold_out  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NFCORPUS = ROOT.parent / "shared" / "data" / "beir" / "nfcorpus"
READINGS = ("full", "full, condensed", "pool", "pool, condensed", "pool + BM25")
DEPTH = 100  # ranks retrieved per query: condensed lists need more than 10 after the unjudged are removed

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class FinishedRun:
    work: Path
    name: str
    seed: int
    model: Path
    test_gain: float


def finished_runs(work: Path) -> list[FinishedRun]:
    """Runs of one ``--work`` folder whose model is on disk (a run that handed back the base has none to score)."""
    base_test = json.loads((work / "base" / "eval.json").read_text())["metrics"]["ndcg@10"]
    runs = []
    for folder in sorted(p for p in work.iterdir() if (p / "training.json").is_file() and (p / "eval.json").is_file()):
        trained = json.loads((folder / "training.json").read_text())
        if (trained.get("selection") or {}).get("output") == "base":
            continue
        test = json.loads((folder / "eval.json").read_text())["metrics"]["ndcg@10"]
        runs.append(FinishedRun(work, folder.name, int(trained["settings"]["seed"]), folder, test - base_test))
    return runs


def distinct(runs: list[FinishedRun]) -> list[FinishedRun]:
    """The runs whose weights differ: a recipe that chose what another chose (e.g. a checkpoint average
    that lost to the best single checkpoint) hands back the same model and would count twice."""
    seen: set[str] = set()
    kept = []
    for run in runs:
        digest = hashlib.blake2b((run.model / "model.safetensors").read_bytes(), digest_size=16).hexdigest()
        if digest not in seen:
            seen.add(digest)
            kept.append(run)
    return kept


def held_out_qrels(judgments_path: Path, collection, settings: dict, seed: int) -> tuple[dict[str, str], Qrels]:
    """The held-out queries (id -> text) and their human qrels, exactly as the run's hold-out drew them."""
    judgments = read_judgments(judgments_path, set(collection.documents))
    _, validation = hold_out(judgments, collection.documents, share=settings["validation_share"],
                             threshold=settings["threshold"], seed=seed)
    return validation.queries, validation.qrels


def dense_run(collection, model: Path | None, queries: dict[str, str]) -> Run:
    query_records = {q: Query(q, text) for q, text in queries.items()}
    return search(collection.documents, query_records, "dense", encoder=Encoder(model, show_progress=False), top_k=DEPTH)


def pooled(qrels: Qrels, pools: dict[str, list[str]]) -> Qrels:
    """Judgments of the pooled documents only: the human grade, else 0 (judged non-relevant)."""
    return {q: {d: qrels[q].get(d, 0) for d in pools[q]} for q in qrels}


def condensed(run: Run, qrels: Qrels) -> Run:
    """Each ranking without the documents its query has no judgment for (Sakai 2007)."""
    return {q: {d: s for d, s in ranked.items() if d in qrels.get(q, {})} for q, ranked in run.items()}


def ndcg(qrels: Qrels, run: Run) -> float:
    return score_run(qrels, run)[0]["ndcg@10"]


def readings(qrels: Qrels, base_run: Run, bm25_run: Run, depth: int) -> dict[str, tuple[Qrels, bool]]:
    """Each reading's qrels and whether it condenses the rankings."""
    base_pool = {q: [d for d, _ in top_ranked(base_run[q], depth)] for q in qrels}
    wider = {q: list(dict.fromkeys([*base_pool[q], *(d for d, _ in top_ranked(bm25_run.get(q, {}), depth))]))
             for q in qrels}
    pool = pooled(qrels, base_pool)
    return {"full": (qrels, False), "full, condensed": (qrels, True), "pool": (pool, False), "pool, condensed": (pool, True),
            "pool + BM25": (pooled(qrels, wider), False)}


def score(reading: tuple[Qrels, bool], run: Run) -> float:
    qrels, condense = reading
    return ndcg(qrels, condensed(run, qrels) if condense else run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, nargs="+", help="--work folders of benchmarks/losses_nfcorpus.py")
    parser.add_argument("--pool-depth", type=int, default=10, help="the base model's top k judged (mine.top_k)")
    parser.add_argument("--data", type=Path, default=NFCORPUS)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    collection = load_collection(args.data)
    runs = distinct([run for work in args.work for run in finished_runs(work)])
    if not runs:
        raise SystemExit("no finished run with a model in the folders given")
    rows: list[tuple[FinishedRun, dict[str, float]]] = []
    per_seed: dict[tuple[Path, int], tuple[dict[str, float], dict[str, tuple[Qrels, bool]], dict[str, str]]] = {}
    for run in runs:
        key = (run.work, run.seed)
        if key not in per_seed:
            settings = json.loads((run.work / "settings.json").read_text())
            judgments_path = next(run.work.glob("*_judgments.jsonl"))
            queries, qrels = held_out_qrels(judgments_path, collection, settings, run.seed)
            base_run = dense_run(collection, None, queries)
            bm25_run = search(collection.documents, {q: Query(q, t) for q, t in queries.items()}, "bm25", top_k=DEPTH)
            views = readings(qrels, base_run, bm25_run, args.pool_depth)
            per_seed[key] = ({name: score(view, base_run) for name, view in views.items()}, views, queries)
        base_scores, views, queries = per_seed[key]
        model_run = dense_run(collection, run.model, queries)
        gains = {name: score(view, model_run) - base_scores[name] for name, view in views.items()}
        rows.append((run, gains))
        print(f"{run.work.name}/{run.name}: " + ", ".join(f"{n} {g * 100:+.2f}" for n, g in gains.items())
              + f", test {run.test_gain * 100:+.2f}", flush=True)
    table = render(rows, args.pool_depth)
    print(table)
    if not args.no_record:
        minutes = (time.perf_counter() - started) / 60
        command = ("python benchmarks/validation_bias.py " + " ".join(str(w.relative_to(ROOT)) if w.is_absolute() and
                   w.is_relative_to(ROOT) else str(w) for w in args.work) + f" --pool-depth {args.pool_depth}")
        append_section(
            f"Validation bias of judging only the base model's candidates (NFCorpus, pool depth {args.pool_depth})",
            command, f"{len(rows)} runs (distinct models), {minutes:.1f} min.", table)


def render(rows: list[tuple[FinishedRun, dict[str, float]]], depth: int) -> str:
    from scipy.stats import spearmanr

    lines = ["| run | seed | " + " | ".join(f"Δ {r}" for r in READINGS) + " | Δ test |",
             "|---|---|" + "---|" * (len(READINGS) + 1)]
    for run, gains in rows:
        lines.append(f"| {run.work.name}/{run.name} | {run.seed} | "
                     + " | ".join(f"{gains[r] * 100:+.2f}" for r in READINGS) + f" | {run.test_gain * 100:+.2f} |")
    tests = [run.test_gain for run, _ in rows]
    lines.append("")
    lines.append(f"Per reading (pool: the base model's top {depth} judged), over {len(rows)} runs: mean bias "
                 "(Δ reading − Δ full, in nDCG@10 points), Spearman ρ of Δ reading with Δ test, and how often "
                 "the reading's Δ has the sign of Δ test.")
    lines.append("")
    lines.append("| reading | mean bias | ρ with Δ test | sign agrees |")
    lines.append("|---|---|---|---|")
    for reading in READINGS:
        gains = [g[reading] for _, g in rows]
        bias = statistics.fmean(g[reading] - g["full"] for _, g in rows)
        rho = spearmanr(gains, tests)[0] if len(rows) >= 3 else float("nan")
        agree = sum((g > 0) == (t > 0) for g, t in zip(gains, tests))
        lines.append(f"| {reading} | {bias * 100:+.2f} | {rho:.2f} | {agree}/{len(rows)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
