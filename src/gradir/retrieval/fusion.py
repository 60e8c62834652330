"""Reciprocal-rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009).

    RRF(d) = Σ_r 1 / (k + rank_r(d))

summed over the rankings r that contain d, with ranks starting at 1 and k = 60.
"""

from __future__ import annotations

from collections.abc import Sequence

from gradir.retrieval.run import Run, top_ranked


def reciprocal_rank_fusion(runs: Sequence[Run], k: int = 60, top_k: int | None = None) -> Run:
    """Fuse several rankings of the same queries into one."""
    fused: Run = {}
    for run in runs:
        for qid, scores in run.items():
            target = fused.setdefault(qid, {})
            for rank, (did, _) in enumerate(top_ranked(scores), start=1):
                target[did] = target.get(did, 0.0) + 1.0 / (k + rank)
    if top_k is not None:
        fused = {qid: dict(top_ranked(scores, top_k)) for qid, scores in fused.items()}
    return fused
