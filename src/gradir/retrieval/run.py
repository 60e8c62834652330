"""Rankings: ``Run`` maps query id -> document id -> score, as pytrec_eval takes them."""

from __future__ import annotations

Run = dict[str, dict[str, float]]


def top_ranked(scores: dict[str, float], k: int | None = None) -> list[tuple[str, float]]:
    """Documents by decreasing score, ties broken by decreasing document id as trec_eval does."""
    ranked = sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)
    return ranked if k is None else ranked[:k]
