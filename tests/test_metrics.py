"""Metrics against values worked out by hand from trec_eval's definitions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytrec_eval

from gradir.evaluation import read_run, score_run, write_run

QRELS = {
    "q1": {"d1": 2, "d2": 1, "d3": 0},
    "q2": {"d9": 1},
    "q3": {"d5": 1},  # never retrieved: scores 0, not dropped
}
RUN = {
    "q1": {"d2": 0.9, "d1": 0.8, "d4": 0.7},
    "q2": {f"x{i}": 1.0 - i / 100 for i in range(10)} | {"d9": 0.5},  # relevant at rank 11
}


def test_ndcg_uses_graded_gains() -> None:
    _, per_query = score_run(QRELS, RUN)
    dcg = 1 / math.log2(2) + 2 / math.log2(3)  # d2 (grade 1) at rank 1, d1 (grade 2) at rank 2
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert per_query["q1"]["ndcg@10"] == pytest.approx(dcg / ideal, abs=1e-6)
    assert per_query["q2"]["ndcg@10"] == 0.0


def test_mrr_is_cut_at_10_but_recall_and_map_see_100() -> None:
    _, per_query = score_run(QRELS, RUN)
    assert per_query["q1"]["mrr@10"] == 1.0
    assert per_query["q2"]["mrr@10"] == 0.0
    assert per_query["q2"]["recall@100"] == 1.0
    assert per_query["q2"]["map@100"] == pytest.approx(1 / 11, abs=1e-6)
    # q1: relevant d2 at rank 1 (P=1) and d1 at rank 2 (P=1), two relevant in all.
    assert per_query["q1"]["map@100"] == pytest.approx(1.0, abs=1e-6)


def test_judged_query_missing_from_the_run_counts_as_zero() -> None:
    means, per_query = score_run(QRELS, RUN)
    assert per_query["q3"] == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "map@100": 0.0}
    assert means["recall@100"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)


def test_ties_follow_trec_eval_order_for_the_mrr_cut() -> None:
    # Eleven documents tie; trec_eval orders ties by decreasing document id, so "d9"
    # (largest id) comes first and "a0".."a9" fill the rest.
    qrels = {"q": {"d9": 1}}
    run = {"q": {"d9": 0.5} | {f"a{i}": 0.5 for i in range(10)}}
    _, per_query = score_run(qrels, run)
    full = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q"]["recip_rank"]
    assert per_query["q"]["mrr@10"] == full == 1.0


def test_run_file_round_trip_gives_the_same_figures(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    run = {"q1": {"d1": 0.123456789012, "d2": 0.123456789011, "d3": -0.5}}
    write_run(path, run)
    assert read_run(path) == run
    lines = path.read_text().splitlines()
    assert lines[0].split()[:4] == ["q1", "Q0", "d1", "1"]
    assert [line.split()[3] for line in lines] == ["1", "2", "3"]
