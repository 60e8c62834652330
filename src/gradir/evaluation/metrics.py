"""Retrieval metrics computed by trec_eval's code (pytrec_eval), not by hand.

- ``ndcg@10``: trec_eval ``ndcg_cut.10``; graded judgments are the gains.
- ``recall@100``: ``recall.100``, relevant = grade > 0.
- ``map@100``: ``map_cut.100``.
- ``mrr@10``: ``recip_rank`` on each query's first 10 results (trec_eval has no cut
  for it), the 10 taken in trec_eval's own order: score, then document id, descending.

A judged query missing from the run scores 0 on every metric (trec_eval would
silently drop it and so inflate the mean).
"""

from __future__ import annotations

import pytrec_eval

from gradir.collections.qrels import Qrels
from gradir.retrieval.run import Run, top_ranked

METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")
_TREC_NAMES = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "map@100": "map_cut_100"}


def score_run(qrels: Qrels, run: Run) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean metrics over the judged queries, and the metrics of each query."""
    judged = {qid: docs for qid, docs in qrels.items() if docs}
    evaluator = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.100", "map_cut.100"})
    per_trec = evaluator.evaluate({qid: run[qid] for qid in judged if qid in run})
    top10 = {qid: dict(top_ranked(run[qid], 10)) for qid in judged if qid in run}
    per_rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top10)

    per_query: dict[str, dict[str, float]] = {}
    for qid in judged:
        measures = per_trec.get(qid, {})
        row = {name: float(measures.get(trec, 0.0)) for name, trec in _TREC_NAMES.items()}
        row["mrr@10"] = float(per_rr.get(qid, {}).get("recip_rank", 0.0))
        per_query[qid] = {name: row[name] for name in METRICS}
    count = len(per_query)
    means = {name: (sum(r[name] for r in per_query.values()) / count if count else 0.0) for name in METRICS}
    return means, per_query
