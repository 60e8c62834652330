"""Reranker losses against their formulas, and training a reranker through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import TINY, run_cli
from gradir.collections import load_collection
from gradir.grading.judgments import judgments_from_qrels, write_judgments
from gradir.losses import GradedBCELoss, LCELoss

SCORES = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)


def test_lce_is_softmax_cross_entropy_of_the_first_document() -> None:
    value = LCELoss(nn.Identity()).compute_loss_from_scores(SCORES).item()
    expected = [-(row[0] - math.log(sum(math.exp(x) for x in row))) for row in SCORES.tolist()]
    assert value == pytest.approx(sum(expected) / 2, abs=1e-12)


def test_graded_bce_uses_soft_labels() -> None:
    labels = torch.tensor([[1.0, 0.5, 0.0], [0.25, 1.0, 0.0]], dtype=torch.float64)
    value = GradedBCELoss(nn.Identity()).compute_loss_from_scores(SCORES, labels).item()
    terms = []
    for s, y in zip(SCORES.flatten().tolist(), labels.flatten().tolist()):
        p = 1 / (1 + math.exp(-s))
        terms.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
    assert value == pytest.approx(sum(terms) / len(terms), abs=1e-12)


def test_lce_prefers_the_positive_ranked_first() -> None:
    good = LCELoss(nn.Identity()).compute_loss_from_scores(torch.tensor([[3.0, 0.0, 0.0]]))
    bad = LCELoss(nn.Identity()).compute_loss_from_scores(torch.tensor([[0.0, 3.0, 0.0]]))
    assert good < bad


@pytest.mark.parametrize("loss", ["lce", "bce"])
def test_train_reranker_gives_a_cross_encoder_that_scores_pairs(tmp_path: Path, loss: str) -> None:
    judgments = tmp_path / "judgments.jsonl"
    write_judgments(judgments, judgments_from_qrels(load_collection(TINY), "test"))
    out = tmp_path / "reranker"
    result = run_cli(
        "train-reranker", "--judgments", judgments, "--collection", TINY, "--loss", loss, "--out", out,
        "--max-steps", "2", "--batch-size", "2", "--list-size", "2", "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == 2

    from sentence_transformers.cross_encoder import CrossEncoder

    scores = CrossEncoder(str(out)).predict([("vitamin d bones", "Vitamin D increases bone density."), ("a", "b")])
    assert len(scores) == 2 and all(math.isfinite(float(s)) for s in scores)


def test_a_trained_reranker_grades_pairs_as_a_cross_encoder_teacher(tmp_path: Path) -> None:
    judgments = tmp_path / "judgments.jsonl"
    write_judgments(judgments, judgments_from_qrels(load_collection(TINY), "test"))
    reranker = tmp_path / "reranker"
    trained = run_cli("train-reranker", "--judgments", judgments, "--collection", TINY, "--loss", "bce", "--out", reranker,
                      "--max-steps", "1", "--batch-size", "2", "--list-size", "2")
    assert trained.returncode == 0, trained.stderr
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(
        json.dumps({"query_id": "q1", "query_text": "does vitamin d help bones", "doc_id": d, "is_source": d == "d1"}) + "\n"
        for d in ("d1", "d2", "d3", "d4", "d5", "d6")
    ))
    out = tmp_path / "graded.jsonl"
    graded = run_cli("grade", "--pairs", pairs, "--collection", TINY, "--grader", "cross-encoder", "--model", reranker,
                     "--out", out, "--json")
    assert graded.returncode == 0, graded.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6
    assert min(r["p_relevant"] for r in rows) == 0.0 and max(r["p_relevant"] for r in rows) == 1.0
    assert all(r["grade"] == round(3 * r["p_relevant"]) for r in rows)
    assert all(r["grader"].startswith("cross-encoder:") for r in rows)
