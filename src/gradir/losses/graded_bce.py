"""Graded binary cross-entropy for cross-encoder rerankers.

Every (query, document) pair of the lists is scored and compared with its soft label
y ∈ [0, 1] (e.g. expected grade / 3):

    L = -1/(B·K) Σ_i Σ_k [ y_ik log σ(f(q_i, d_ik)) + (1 − y_ik) log(1 − σ(f(q_i, d_ik))) ]

Reference: the pointwise monoBERT objective (Nogueira and Cho, 2019) with graded soft
labels in place of 0/1, as BiXSE does for bi-encoders.

Example::

    from gradir.losses import GradedBCELoss
    loss = GradedBCELoss(reranker)
    # dataset columns: query, document_1..document_K, label = [y_1, ..., y_K]
"""

from __future__ import annotations

from torch import Tensor, nn

from gradir.losses.reranker_base import RerankerLoss, as_float


class GradedBCELoss(RerankerLoss):
    @property
    def citation(self) -> str:
        return """
@misc{nogueira2019passage,
    title = {Passage Re-ranking with BERT},
    author = {Nogueira, Rodrigo and Cho, Kyunghyun},
    year = {2019},
    eprint = {1901.04085},
    archivePrefix = {arXiv},
}
"""

    def compute_loss_from_scores(self, scores: Tensor, labels: Tensor) -> Tensor:
        return nn.functional.binary_cross_entropy_with_logits(scores, as_float(labels, scores).clamp(0.0, 1.0))
