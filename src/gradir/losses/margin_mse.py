"""MarginMSE: match the student's score margins to the teacher's.

For query q with positive p, hard negatives n_1..n_M and teacher scores t:

    L = 1/(B·M) Σ_i Σ_m ( s·(sim(q_i, p_i) − sim(q_i, n_im)) − (t_ip − t_im) )²,   s = exp(log_s)

The reference form (Hofstätter et al.; GPL) regresses unnormalised dot-product margins
onto raw cross-encoder margins, whose scales happen to match. gradir's students are
often cosine models (margins ≈ 0.1–0.3) and its teachers give labels on their own
scale (p_relevant in [0, 1]), so a learnable scale s (a loss parameter, initialised at
5, trained at the loss learning rate) maps one onto the other; only the ordering and
relative size of the margins is learnt by the encoder. sim is the dot product of the
model's embeddings (the cosine for a model that normalises them).

Reference: Hofstätter et al., "Improving Efficient Neural Ranking Models with
Cross-Architecture Knowledge Distillation" (2020); Wang et al., "GPL: Generative
Pseudo Labeling for Unsupervised Domain Adaptation of Dense Retrieval" (2022).

Example::

    from gradir.losses import MarginMSELoss
    loss = MarginMSELoss(model)
    # dataset columns: query, positive, negative_1..negative_M, label = [t_p, t_1, ..., t_M]
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gradir.losses.base import BiEncoderLoss


class MarginMSELoss(BiEncoderLoss):
    """Margin MSE against the teacher's margins (formula in the module docstring).

    Args:
        model: the SentenceTransformer being trained.
        init_scale: s at the start, mapping the student's margins onto the labels' scale.
        learnable: train s (at the loss learning rate) or keep it fixed.

    Inputs:
        | texts                                         | labels                                         |
        |-----------------------------------------------|------------------------------------------------|
        | (query, positive, negative_1..negative_M)     | (B, 1 + M) teacher scores: p_relevant in [0, 1] |
    """

    def __init__(self, model: nn.Module, init_scale: float = 5.0, learnable: bool = True):
        super().__init__(model)
        self.init_scale, self.learnable = init_scale, learnable
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)), requires_grad=learnable)

    def get_config_dict(self) -> dict[str, Any]:
        return {"init_scale": self.init_scale, "learnable": self.learnable}

    @property
    def citation(self) -> str:
        return """
@misc{hofstaetter2020margin,
    title = {Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge Distillation},
    author = {Hofst{\\"a}tter, Sebastian and Althammer, Sophia and Schr{\\"o}der, Michael and Sertkan, Mete and Hanbury, Allan},
    year = {2020},
    eprint = {2010.02666},
    archivePrefix = {arXiv},
}
"""

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        _, teacher, _ = self.queries_and_labels(embeddings, labels, "margin_mse")
        documents = torch.stack(embeddings[1:], dim=1)
        student = torch.einsum("bd,bkd->bk", embeddings[0], documents)
        student_margin = self.log_scale.exp() * (student[:, :1] - student[:, 1:])
        teacher_margin = teacher[:, :1] - teacher[:, 1:]
        return (student_margin - teacher_margin).pow(2).mean()
