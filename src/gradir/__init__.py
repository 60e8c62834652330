"""gradir: adapt text-embedding models to a collection with synthetic data and graded labels.

The pipeline in one call (the same as ``gradir run``)::

    import gradir

    result = gradir.run("gradir.toml", out="runs/scifact")
    print(result.summary()["stages"]["evaluate"])

Each stage is also a function: :func:`gradir.synth.generate_queries`,
:func:`gradir.synth.round_trip_filter`, :func:`gradir.retrieval.mining.mine_candidates`,
:func:`gradir.grading.grade.grade_pairs`, :func:`gradir.training.train`,
:func:`gradir.evaluation.evaluate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradir.pipeline import PipelineConfig, PipelineResult

__version__ = "0.1.0"


def run(config: PipelineConfig | Path | str | dict[str, Any], out: Path | str) -> PipelineResult:
    """Run the pipeline of ``config`` (a TOML path, a dict of sections or a PipelineConfig) into ``out``."""
    from gradir.pipeline import run_pipeline
    from gradir.pipeline.config import validate_config

    if isinstance(config, dict):
        config = validate_config(config, "gradir.run(config)")
    return run_pipeline(config, out)
