from __future__ import annotations

import pytest

from gradir.retrieval.fusion import reciprocal_rank_fusion


def test_rrf_sums_reciprocal_ranks() -> None:
    dense = {"q": {"a": 0.9, "b": 0.8, "c": 0.1}}
    bm25 = {"q": {"b": 12.0, "d": 7.0}}
    fused = reciprocal_rank_fusion([dense, bm25], k=60)["q"]
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 63)
    assert fused["d"] == pytest.approx(1 / 62)
    assert max(fused, key=fused.get) == "b"


def test_rrf_ignores_score_scales_and_truncates() -> None:
    a = {"q": {"x": 1000.0, "y": 999.0}}
    b = {"q": {"y": 0.2, "x": 0.1}}
    fused = reciprocal_rank_fusion([a, b], top_k=1)
    assert len(fused["q"]) == 1
    # x and y tie exactly; the tie-break is by id (descending), so y is kept.
    assert list(fused["q"]) == ["y"]


def test_rrf_keeps_queries_present_in_one_run_only() -> None:
    fused = reciprocal_rank_fusion([{"q1": {"a": 1.0}}, {"q2": {"b": 1.0}}])
    assert set(fused) == {"q1", "q2"}
