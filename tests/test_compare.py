from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, run_cli
from gradir.evaluation import compare_per_query, write_run


def _per_query(values: list[float]) -> dict[str, dict[str, float]]:
    return {f"q{i}": {"ndcg@10": v} for i, v in enumerate(values)}


def test_wins_losses_and_exact_randomisation_p_value() -> None:
    a = [0.1, 0.4, 0.3, 0.5, 0.2, 0.6, 0.3, 0.2]
    b = [0.3, 0.5, 0.3, 0.9, 0.4, 0.5, 0.6, 0.5]
    result = compare_per_query(_per_query(a), _per_query(b), resamples=20_000, seed=1)
    diff = np.array(b) - np.array(a)
    assert (result.wins, result.losses, result.ties) == (6, 1, 1)
    assert result.delta == pytest.approx(diff.mean())
    # Exact two-sided p over all 2^8 sign flips; 256 < resamples, so scipy enumerates too.
    observed = abs(diff.mean())
    flips = [abs((diff * np.array(s)).mean()) >= observed - 1e-12 for s in itertools.product([1, -1], repeat=8)]
    assert result.p_randomization == pytest.approx(np.mean(flips), abs=1e-9)
    assert 0 < result.p_ttest < 0.05


def test_identical_systems_have_p_one() -> None:
    values = _per_query([0.2, 0.5, 0.7])
    result = compare_per_query(values, values)
    assert result.delta == 0 and result.p_ttest == 1.0 and result.p_randomization == 1.0
    assert result.ties == 3


def test_cli_compare_reports_the_test(tmp_path: Path) -> None:
    good = {"q1": {"d1": 1.0, "d6": 0.5}, "q2": {"d2": 1.0, "d3": 0.9}, "q3": {"d5": 1.0}}
    bad = {"q1": {"d4": 1.0}, "q2": {"d4": 1.0}, "q3": {"d4": 1.0}}
    write_run(tmp_path / "good.trec", good)
    (tmp_path / "bad").mkdir()
    write_run(tmp_path / "bad" / "run.trec", bad)
    result = run_cli("compare", tmp_path / "bad", tmp_path / "good.trec", "--collection", TINY, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["wins"] == 3 and summary["losses"] == 0
    assert summary["mean_a"] == 0.0 and summary["mean_b"] == pytest.approx(1.0)


def test_cli_compare_rejects_a_malformed_run(tmp_path: Path) -> None:
    (tmp_path / "broken.trec").write_text("q1 Q0 d1 1 0.5 tag\nq1 Q0 d2 two\n")
    write_run(tmp_path / "ok.trec", {"q1": {"d1": 1.0}})
    result = run_cli("compare", tmp_path / "ok.trec", tmp_path / "broken.trec", "--collection", TINY)
    assert result.returncode == 2
    assert "broken.trec:2: expected 6 fields" in result.stderr
    assert "Traceback" not in result.stderr
