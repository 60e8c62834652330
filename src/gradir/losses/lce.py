"""Localised contrastive estimation (LCE) for cross-encoder rerankers.

Each query has one positive (the first document) and n hard negatives of the same query
(from the retriever the reranker will follow):

    L = -1/B Σ_i log( exp(f(q_i, d_i0)) / Σ_{k=0..n} exp(f(q_i, d_ik)) )

Reference: Gao, Dai and Callan, "Rethink Training of BERT Rerankers in Multi-Stage
Retrieval Pipeline" (ECIR 2021); Peshevski et al. train domain rerankers with it.

Example::

    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer
    from gradir.losses import LCELoss
    reranker = CrossEncoder("path/to/backbone", num_labels=1)
    # dataset columns: query, positive, negative_1..negative_n
    CrossEncoderTrainer(model=reranker, train_dataset=dataset, loss=LCELoss(reranker)).train()
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradir.losses.reranker_base import RerankerLoss


class LCELoss(RerankerLoss):
    @property
    def citation(self) -> str:
        return """
@inproceedings{gao2021lce,
    title = {Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline},
    author = {Gao, Luyu and Dai, Zhuyun and Callan, Jamie},
    booktitle = {Advances in Information Retrieval (ECIR 2021)},
    year = {2021},
}
"""

    def compute_loss_from_scores(self, scores: Tensor, labels: Tensor | None = None) -> Tensor:
        target = torch.zeros(scores.size(0), dtype=torch.long, device=scores.device)
        return nn.functional.cross_entropy(scores, target)
