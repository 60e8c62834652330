"""Paired comparison of two systems over the same queries.

Two tests of H0 "no difference in the mean":
- the paired t-test (``scipy.stats.ttest_rel``);
- the paired randomisation (permutation) test: the sign of each query's difference
  is flipped at random, ``scipy.stats.permutation_test`` with
  ``permutation_type="samples"``, on the mean difference (two-sided unless asked otherwise).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedComparison:
    metric: str
    queries: int
    mean_a: float
    mean_b: float
    delta: float
    wins: int
    losses: int
    ties: int
    t_statistic: float
    p_ttest: float
    p_randomization: float

    def as_dict(self) -> dict:
        return asdict(self)


def compare_per_query(
    per_query_a: dict[str, dict[str, float]],
    per_query_b: dict[str, dict[str, float]],
    metric: str = "ndcg@10",
    resamples: int = 10_000,
    seed: int = 0,
    alternative: str = "two-sided",
) -> PairedComparison:
    """Compare system B against system A on the queries both were scored on (wins = B better).

    ``alternative="greater"`` makes both tests one-sided (H1: B's mean is higher), for a
    decision that only acts on a gain, such as keeping a tuned model over its base."""
    queries = sorted(set(per_query_a) & set(per_query_b))
    a = np.array([per_query_a[q][metric] for q in queries], dtype=np.float64)
    b = np.array([per_query_b[q][metric] for q in queries], dtype=np.float64)
    diff = b - a
    if len(queries) < 2 or np.allclose(diff, 0.0):
        t_stat, p_t, p_rand = 0.0, 1.0, 1.0
    else:
        t_result = stats.ttest_rel(b, a, alternative=alternative)
        t_stat, p_t = float(t_result.statistic), float(t_result.pvalue)
        perm = stats.permutation_test(
            (b, a),
            lambda x, y, axis: np.mean(x - y, axis=axis),
            permutation_type="samples",
            n_resamples=resamples,
            alternative=alternative,
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
        p_rand = float(perm.pvalue)
    return PairedComparison(
        metric=metric,
        queries=len(queries),
        mean_a=float(a.mean()) if len(a) else 0.0,
        mean_b=float(b.mean()) if len(b) else 0.0,
        delta=float(diff.mean()) if len(diff) else 0.0,
        wins=int((diff > 1e-12).sum()),
        losses=int((diff < -1e-12).sum()),
        ties=int((np.abs(diff) <= 1e-12).sum()),
        t_statistic=t_stat,
        p_ttest=p_t,
        p_randomization=p_rand,
    )
