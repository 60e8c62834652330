"""Checking a grader against human judgments: does it predict retrieval quality?

For a sample of a split's judged queries, the base retriever's top ``k`` documents are
graded, and three things are reported:

- **reranking**: nDCG@10 of the top k reordered by the grader's score (ties kept in
  the base order) next to nDCG@10 of the base order, on the same queries, with the
  paired t-test and randomisation test (:func:`gradir.evaluation.compare.compare_per_query`);
  and reordered by the grader fused with the retriever: per query, the mean of the two
  scores' z-scores over the k documents (:func:`gradir.grading.likelihood.fused_scores`
  at weight 0.5; a teacher weaker than the retriever on some queries can still add to it);
  and reordered by the labels themselves (``p_relevant``): the teacher the training
  stage learns from, with whatever fusion the grader is set to (each pair carries the
  base retriever's score and its BM25 score, as mined pairs do);
- **pairwise accuracy**: among documents of one query, how often a judged-relevant
  document scores above a judged-non-relevant one, and above an unjudged one (ties
  count one half);
- **agreement** with the human grades (Spearman's ρ, weighted κ, confusion table) over
  the graded pairs, an unjudged document counted as grade 0, as BEIR's evaluation does.

The score a grader ranks by: the expected grade (``llm``), the raw cross-encoder score,
or the mean query log-probability (``likelihood``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from itertools import product

from gradir.cache_dir import default_cache_dir
from gradir.collections.loader import Collection
from gradir.collections.records import Query
from gradir.retrieval.encoding import Encoder
from gradir.evaluation.compare import compare_per_query
from gradir.evaluation.metrics import score_run
from gradir.grading.agreement import agreement
from gradir.grading.grade import Grading, Pair
from gradir.grading.likelihood import fused_scores
from gradir.retrieval.bm25 import collection_index
from gradir.retrieval.search import search


def check_against_qrels(
    collection: Collection,
    split: str,
    grade: Callable[[list[Pair]], Grading],
    *,
    queries: int = 50,
    top_k: int = 10,
    seed: int = 0,
    encoder: Encoder | None = None,
) -> dict:
    """Grade each sampled query's base top ``top_k`` and compare with the split's qrels."""
    qrels = collection.qrels(split)
    judged = sorted(qid for qid, docs in qrels.items() if any(g > 0 for g in docs.values()))
    chosen = sorted(random.Random(seed).sample(judged, min(queries, len(judged))))
    sample = {qid: Query(qid, collection.queries[qid].text) for qid in chosen}
    base = search(collection.documents, sample, "dense", encoder=encoder, top_k=top_k)
    bm25 = collection_index(collection.documents, default_cache_dir() if encoder is None else encoder.cache_root)
    ranked = {qid: _ranked(base[qid]) for qid in chosen}
    pairs = [
        Pair(qid, sample[qid].text, did, False, base[qid][did], bm25_score)
        for qid in chosen
        for did, bm25_score in zip(ranked[qid], bm25.score_documents(sample[qid].text, ranked[qid]))
    ]
    graded = grade(pairs)
    scores = {(j.query_id, j.doc_id): j.score for j in graded.judgments}
    labels = {(j.query_id, j.doc_id): j.p_relevant for j in graded.judgments}

    # Each document's score, offset by a tiny amount of its base rank so that ties keep the base order.
    reranked = _ordered_by(scores, ranked)
    sub_qrels = {qid: qrels[qid] for qid in chosen}
    base_means, base_per_query = score_run(sub_qrels, base)
    rerank_means, rerank_per_query = score_run(sub_qrels, _finite(reranked))
    fused_means, fused_per_query = score_run(sub_qrels, {qid: _fused(base[qid], reranked[qid]) for qid in base})
    teacher_means, teacher_per_query = score_run(sub_qrels, _finite(_ordered_by(labels, ranked)))
    test = compare_per_query(base_per_query, rerank_per_query, "ndcg@10")
    fused_test = compare_per_query(base_per_query, fused_per_query, "ndcg@10")
    teacher_test = compare_per_query(base_per_query, teacher_per_query, "ndcg@10")

    human = [qrels[j.query_id].get(j.doc_id, 0) for j in graded.judgments]
    report = agreement(human, [j.score for j in graded.judgments], [j.grade for j in graded.judgments])
    return {
        "queries": len(chosen),
        "top_k": top_k,
        "pairs": len(pairs),
        "graded": len(graded.judgments),
        "grade_failures": dict(graded.failures),
        "ndcg@10_base": base_means["ndcg@10"],
        "ndcg@10_reranked": rerank_means["ndcg@10"],
        "rerank_test": test.as_dict(),
        "ndcg@10_fused": fused_means["ndcg@10"],
        "fused_test": fused_test.as_dict(),
        "ndcg@10_teacher": teacher_means["ndcg@10"],
        "teacher_test": teacher_test.as_dict(),
        "pairwise_accuracy": _pairwise(scores, qrels, base),
        "grade_histogram": graded.histogram(),
        **report.as_dict(),
    }


def _ordered_by(values: dict[tuple[str, str], float], ranked: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Each query's documents scored by ``values`` (-inf where missing), a tiny share of the base rank breaking ties."""
    return {
        qid: {did: values.get((qid, did), float("-inf")) - 1e-9 * rank for rank, did in enumerate(docs)}
        for qid, docs in ranked.items()
    }


def _ranked(run: dict[str, float]) -> list[str]:
    return [did for did, _ in sorted(run.items(), key=lambda item: (-item[1], item[0]))]


def _fused(retriever: dict[str, float], grader: dict[str, float]) -> dict[str, float]:
    """The equal mean of the two scores' z-scores over one query's documents (a failed grade counts as the lowest)."""
    ids = _ranked(retriever)
    finite = [grader[d] for d in ids if math.isfinite(grader[d])]
    lowest = min(finite, default=0.0)
    graded = [grader[d] if math.isfinite(grader[d]) else lowest for d in ids]
    fused = fused_scores(["q"] * len(ids), graded, [(0.5, [retriever[d] for d in ids])])
    return {d: f - 1e-9 * rank for rank, (d, f) in enumerate(zip(ids, fused))}


def _finite(run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """pytrec_eval needs finite scores: a failed grade goes below every graded document."""
    out = {}
    for qid, docs in run.items():
        floor = min((s for s in docs.values() if s != float("-inf")), default=0.0) - 1.0
        out[qid] = {did: (s if s != float("-inf") else floor - 1e-6 * i) for i, (did, s) in enumerate(docs.items())}
    return out


def _pairwise(scores: dict[tuple[str, str], float], qrels: dict, base: dict) -> dict:
    """Share of (relevant, other) document pairs of one query that the grader orders right."""
    counts = {"vs_judged_nonrelevant": [0.0, 0], "vs_unjudged": [0.0, 0]}
    for qid, run in base.items():
        graded = [did for did in run if (qid, did) in scores]
        relevant = [d for d in graded if qrels[qid].get(d, 0) > 0]
        for kind, others in (
            ("vs_judged_nonrelevant", [d for d in graded if d in qrels[qid] and qrels[qid][d] <= 0]),
            ("vs_unjudged", [d for d in graded if d not in qrels[qid]]),
        ):
            for good, bad in product(relevant, others):
                a, b = scores[qid, good], scores[qid, bad]
                counts[kind][0] += 1.0 if a > b else 0.5 if a == b else 0.0
                counts[kind][1] += 1
    return {kind: {"accuracy": (right / total if total else None), "pairs": total} for kind, (right, total) in counts.items()}
