"""Does the label-free validation gain rank runs as the test gain does? One sentence for a table."""

from __future__ import annotations


def validation_test_sentence(pairs: list[tuple[float, float]], unit: str) -> str:
    """Spearman ρ over (validation gain, test gain) pairs, one per ``unit`` (run, row), as a sentence."""
    from scipy.stats import spearmanr

    if len(pairs) < 3:
        return f"Validation gain ↔ test gain: fewer than 3 {unit}s with a validation set."
    rho, p = spearmanr([v for v, _ in pairs], [t for _, t in pairs])
    return f"Validation gain ↔ test gain over {len(pairs)} {unit}s: Spearman ρ = {rho:.2f} (p = {p:.3f})."
