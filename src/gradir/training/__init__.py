"""Assembling training sets from judgments and training bi-encoders and rerankers."""

from gradir.training.assemble import assemble_training_set
from gradir.training.train import TrainResult, TrainSettings, train, train_reranker

__all__ = ["TrainResult", "TrainSettings", "assemble_training_set", "train", "train_reranker"]
