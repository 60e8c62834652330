"""The pipeline: config → sample → generate → filter → documents → mine → grade → train → evaluate → report."""

from gradir.pipeline.config import ConfigError, PipelineConfig, load_config, parse_config, render_config
from gradir.pipeline.runner import PipelineResult, StageStatus, run_pipeline, stage_statuses
from gradir.pipeline.stages import STAGE_NAMES, STAGES

__all__ = [
    "ConfigError", "PipelineConfig", "PipelineResult", "STAGES", "STAGE_NAMES", "StageStatus",
    "load_config", "parse_config", "render_config", "run_pipeline", "stage_statuses",
]
