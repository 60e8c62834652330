"""A cross-encoder teacher: any local sentence-transformers CrossEncoder.

Raw scores are normalised per run as in Tamber et al. (arXiv 2505.19274): min–max
between the 1st and 99th percentiles of the run's scores, clipped to [0, 1]. The grade
is round(3 · p).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gradir.errors import GradirError


def normalise_scores(scores: Sequence[float], low_percentile: float = 1.0, high_percentile: float = 99.0) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64)
    low, high = np.percentile(values, [low_percentile, high_percentile])
    if high <= low:
        return np.full_like(values, 0.5)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def grade_with_cross_encoder(
    pairs: Sequence[tuple[str, str]], model_path: Path | str, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores and normalised scores of each (query, document) pair."""
    from sentence_transformers.cross_encoder import CrossEncoder

    path = Path(model_path)
    if not path.is_dir():
        raise GradirError(f"{model_path}: no such cross-encoder folder (local paths only)")
    model = CrossEncoder(str(path), local_files_only=True)
    raw = np.asarray(model.predict(list(pairs), batch_size=batch_size, show_progress_bar=False), dtype=np.float64)
    return raw, normalise_scores(raw)
