"""Assembling training sets from judgments and training bi-encoders with gradir's losses."""

from gradir.training.assemble import assemble_training_set
from gradir.training.train import TrainResult, train

__all__ = ["TrainResult", "assemble_training_set", "train"]
