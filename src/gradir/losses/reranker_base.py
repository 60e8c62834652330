"""What the cross-encoder (reranker) losses share: scoring each query's list of documents.

Batch layout: ``inputs[0]`` the B queries, ``inputs[1:]`` K document columns (texts, as
sentence-transformers' CrossEncoderTrainer passes them), ``labels`` (B, K).
"""

from __future__ import annotations

import torch
from sentence_transformers.util import batch_to_device
from torch import Tensor, nn


class RerankerLoss(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def list_scores(self, inputs: list[list[str]]) -> Tensor:
        """(B, K) logits of every (query, document) pair, scored in one forward pass."""
        queries, columns = inputs[0], inputs[1:]
        pairs = [(q, column[i]) for column in columns for i, q in enumerate(queries)]
        features = batch_to_device(self.model.preprocess(pairs), self.model.device)
        logits = self.model(features)["scores"].view(len(columns), len(queries))
        return logits.T

    def forward(self, inputs: list[list[str]], labels: Tensor, **_: object) -> Tensor:
        return self.compute_loss_from_scores(self.list_scores(inputs), labels)

    def compute_loss_from_scores(self, scores: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError


def as_float(labels: Tensor | list, scores: Tensor) -> Tensor:
    """The labels as a tensor like ``scores`` (the cross-encoder collator may hand a list of lists)."""
    if not isinstance(labels, Tensor):
        labels = torch.stack([torch.as_tensor(row) for row in labels])
    return labels.to(dtype=scores.dtype, device=scores.device)
