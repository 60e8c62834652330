"""Which teacher orders the base top 10 best: query likelihood, the retrievers' scores, and their fusions.

Per query, every signal is turned into z-scores over the query's top-k documents (the
base dense retriever's top k) and the teacher's order is their weighted sum:

    teacher(q, d) = Σ_s w_s · z_q(s(q, d)),   Σ_s w_s = 1,  w_s ≥ 0

The signals: ``dense`` (the base model's cosine), ``bm25`` (the document's BM25 score
for the query, the Elasticsearch-style set-up of :mod:`gradir.retrieval.bm25`) and one
per LLM scorer (``likelihood:MODEL:PASSAGE_TOKENS``, the mean query log-probability of
:mod:`gradir.grading.likelihood`). The weights are chosen on a *tuning* split (SciFact
train, NFCorpus dev: queries the test figures never see), by mean nDCG@10 over a grid
of step ``--step`` on the simplex, and the chosen weights are then reported on the test
split beside the base order, each signal alone and the equal fusions, with the paired
randomisation test against the base order.

Expected run time on 2 CPU cores: the LLM scoring dominates, about 3 pairs/s per scorer
at 128 passage tokens (so about 17 minutes per scorer for SciFact's 300 test queries);
scores are kept in the LLM call cache (``--cache``), so a rerun scores nothing twice.

    .venv/bin/python benchmarks/teacher_fusion.py --collections scifact nfcorpus \
        --scorers smollm2-135m:128 gemma3-270m:128 [--tune-queries 150] [--step 0.1]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from gradir.collections import load_collection  # noqa: E402
from gradir.collections.loader import Collection  # noqa: E402
from gradir.collections.records import Query  # noqa: E402
from gradir.evaluation.compare import compare_per_query  # noqa: E402
from gradir.evaluation.metrics import score_run  # noqa: E402
from gradir.grading.grade import Pair, grade_pairs  # noqa: E402
from gradir.llm import LLMClient, load_backend  # noqa: E402
from gradir.retrieval.bm25 import collection_index  # noqa: E402
from gradir.retrieval.encoding import Encoder  # noqa: E402
from gradir.retrieval.run import top_ranked  # noqa: E402
from gradir.retrieval.search import search  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "beir"
TUNE_SPLIT = {"scifact": "train", "nfcorpus": "dev"}

# signal name -> query id -> doc id -> score
Signals = dict[str, dict[str, dict[str, float]]]


def judged_sample(collection: Collection, split: str, queries: int, seed: int) -> dict[str, Query]:
    qrels = collection.qrels(split)
    judged = sorted(qid for qid, docs in qrels.items() if any(g > 0 for g in docs.values()) and qid in collection.queries)
    chosen = sorted(random.Random(seed).sample(judged, min(queries, len(judged))))
    return {qid: Query(qid, collection.queries[qid].text) for qid in chosen}


def split_signals(collection: Collection, queries: dict[str, Query], scorers: list[str], top_k: int,
                  encoder: Encoder, cache: Path) -> Signals:
    """Every signal's score for each query's base top ``top_k`` documents."""
    base = search(collection.documents, queries, "dense", encoder=encoder, top_k=top_k)
    signals: Signals = {"dense": base}
    bm25 = collection_index(collection.documents, encoder.cache_root)
    signals["bm25"] = {qid: dict(zip(base[qid], bm25.score_documents(query.text, list(base[qid]))))
                       for qid, query in queries.items()}
    pairs = [Pair(qid, queries[qid].text, did, False) for qid in queries for did, _ in top_ranked(base[qid])]
    for scorer in scorers:
        model, tokens = scorer.split(":")
        client = LLMClient(load_backend(f"llamacpp:{model}"), cache_dir=cache, show_progress=False)
        start = time.perf_counter()
        graded = grade_pairs(pairs, collection.documents, "likelihood", client=client, max_passage_tokens=int(tokens))
        calls = client.counts.llm_calls
        client.close()
        print(f"  {scorer}: {len(graded.judgments)} pairs scored ({calls} fresh) in {time.perf_counter() - start:.0f} s",
              file=sys.stderr, flush=True)
        found = {(j.query_id, j.doc_id): j.score for j in graded.judgments}
        by_query: dict[str, dict[str, float]] = {}
        for qid in queries:
            own = {did: found[qid, did] for did in base[qid] if (qid, did) in found}
            lowest = min(own.values(), default=0.0)  # a failed score counts as the query's lowest
            by_query[qid] = {did: own.get(did, lowest) for did in base[qid]}
        signals[f"likelihood:{scorer}"] = by_query
    return signals


def z_scores(signals: Signals) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, run in signals.items():
        out[name] = {}
        for qid, docs in run.items():
            values = np.array(list(docs.values()), dtype=np.float64)
            spread = values.std()
            z = (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)
            out[name][qid] = dict(zip(docs, z.tolist()))
    return out


def fused_run(z: dict, base: dict[str, dict[str, float]], weights: dict[str, float]) -> dict[str, dict[str, float]]:
    """The weighted sum of z-scores per document; a tiny share of the base rank breaks ties."""
    run = {}
    for qid, docs in base.items():
        ranked = [did for did, _ in top_ranked(docs)]
        run[qid] = {did: sum(w * z[s][qid][did] for s, w in weights.items() if w) - 1e-9 * rank
                    for rank, did in enumerate(ranked)}
    return run


def simplex(names: list[str], step: float) -> list[dict[str, float]]:
    units = round(1 / step)
    grid = []
    for parts in itertools.product(range(units + 1), repeat=len(names)):
        if sum(parts) == units:
            grid.append({n: p / units for n, p in zip(names, parts)})
    return grid


def label(weights: dict[str, float]) -> str:
    kept = [(n, w) for n, w in weights.items() if w > 0]
    if len(kept) == 1:
        return f"{kept[0][0]} alone"
    return " + ".join(f"{w:.2g}·{n}" for n, w in kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="+", default=["scifact", "nfcorpus"])
    parser.add_argument("--scorers", nargs="+", default=["smollm2-135m:128", "gemma3-270m:128"],
                        help="MODEL:PASSAGE_TOKENS, MODEL a named GGUF of the llamacpp backend")
    parser.add_argument("--test-queries", type=int, default=0, help="judged test queries; 0: all")
    parser.add_argument("--tune-queries", type=int, default=150, help="judged queries of the tuning split")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--step", type=float, default=0.1, help="grid step of the weights")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "work" / "grader_check_cache")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    encoder = Encoder(show_progress=False)
    rows = []
    for name in args.collections:
        collection = load_collection(DATA / name)
        splits = {"tune": (TUNE_SPLIT[name], args.tune_queries), "test": ("test", args.test_queries or 10**9)}
        per_split = {}
        for role, (split, count) in splits.items():
            queries = judged_sample(collection, split, count, seed=0)
            print(f"{name} {split}: {len(queries)} queries", file=sys.stderr, flush=True)
            signals = split_signals(collection, queries, args.scorers, args.top_k, encoder, args.cache)
            qrels = collection.qrels(split)
            per_split[role] = (signals, z_scores(signals), {qid: qrels[qid] for qid in queries})

        names = list(per_split["test"][0])
        grid = simplex(names, args.step)
        grid_size = len(grid)

        def evaluate(role: str, weights: dict[str, float]) -> tuple[float, dict]:
            signals, z, qrels = per_split[role]
            means, per_query = score_run(qrels, fused_run(z, signals["dense"], weights))
            return means["ndcg@10"], per_query

        def best_of(weightings: list[dict[str, float]]) -> tuple[float, dict[str, float]]:
            """The weighting with the best tuning-split nDCG@10 (of equals, the one with fewer signals)."""
            tuned = [(evaluate("tune", w)[0], w) for w in weightings]
            return max(tuned, key=lambda item: (item[0], -sum(1 for v in item[1].values() if v)))

        llm_names = [n for n in names if n.startswith("likelihood:")]
        best_tune, best = best_of(grid)
        _, best_without_llm = best_of([w for w in grid if not any(w[n] for n in llm_names)])
        candidates: list[tuple[str, dict[str, float]]] = [("base order", {"dense": 1.0})]
        candidates += [("alone", {n: 1.0}) for n in names if n != "dense"]
        candidates.append(("equal, no LLM", {"dense": 0.5, "bm25": 0.5}))
        candidates += [("equal", {"dense": 0.5, n: 0.5}) for n in llm_names]
        if len(llm_names) > 1:
            candidates.append(("equal", {"dense": 1 / 3, **{n: (2 / 3) / len(llm_names) for n in llm_names}}))
        candidates.append(("equal", {n: 1 / len(names) for n in names}))
        candidates.append((f"chosen on {TUNE_SPLIT[name]}, no LLM", best_without_llm))
        candidates.append((f"chosen on {TUNE_SPLIT[name]}", best))
        base_tune, base_test = evaluate("tune", {"dense": 1.0}), evaluate("test", {"dense": 1.0})
        without_llm = evaluate("test", best_without_llm)[1]
        for kind, weights in candidates:
            tune_ndcg = evaluate("tune", weights)[0]
            test_ndcg, per_query = evaluate("test", weights)
            test = compare_per_query(base_test[1], per_query, "ndcg@10")
            vs_retrievers = compare_per_query(without_llm, per_query, "ndcg@10")
            rows.append(
                f"| {name} | {kind} | {label(weights)} | {tune_ndcg:.4f} ({tune_ndcg - base_tune[0]:+.4f}) "
                f"| {test_ndcg:.4f} | {test.delta * 100:+.2f} | {test.p_randomization:.3g} | {test.wins}/{test.losses} "
                f"| {vs_retrievers.delta * 100:+.2f} | {vs_retrievers.p_randomization:.3g} |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
        print(f"{name}: best on the tuning split {best_tune:.4f} with {label(best)} ({len(grid)} weightings tried)",
              file=sys.stderr, flush=True)

    table = "\n".join([
        "| collection | teacher | weights (z-scores per query) | nDCG@10 tuning split (Δ) | nDCG@10 test "
        "| Δ ×100 vs base order | p (randomisation) | wins/losses | Δ ×100 vs the retrievers' fusion chosen without "
        "the LLM | p |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])
    print(table)
    if not args.no_record:
        append_section(
            "Teachers fused: the base top 10 reordered by weighted z-scores, weights chosen off the test split",
            "python benchmarks/teacher_fusion.py " + " ".join(sys.argv[1:]),
            f"all-MiniLM-L6-v2's top {args.top_k} per judged query; test = every judged test query; tuning split = "
            f"{args.tune_queries} sampled judged queries of SciFact train / NFCorpus dev (seed 0); weights on the "
            f"simplex at step {args.step} ({grid_size} weightings per collection), the best on the tuning split "
            "reported on test. Likelihood scorers read "
            "the shipped prompt (prompts/grading/likelihood.txt) at the given passage tokens.",
            table,
        )


if __name__ == "__main__":
    main()
