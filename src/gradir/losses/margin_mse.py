"""MarginMSE: match the student's score margins to the teacher's.

For query q with positive p, hard negatives n_1..n_M and teacher scores t:

    L = 1/(B·M) Σ_i Σ_m ( (cos(q_i, p_i) − cos(q_i, n_im)) − (t_ip − t_im) )²

Reference: Hofstätter et al., "Improving Efficient Neural Ranking Models with
Cross-Architecture Knowledge Distillation" (2020); Wang et al., "GPL: Generative
Pseudo Labeling for Unsupervised Domain Adaptation of Dense Retrieval" (2022).
Cosine similarity matches teacher scores normalised to [0, 1] by gradir's graders.

Example::

    from gradir.losses import MarginMSELoss
    loss = MarginMSELoss(model)
    # dataset columns: query, positive, negative_1..negative_M, label = [t_p, t_1, ..., t_M]
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradir.losses.base import BiEncoderLoss, normalize


class MarginMSELoss(BiEncoderLoss):
    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        queries, teacher = self.queries_and_labels(embeddings, labels, "margin_mse")
        documents = torch.stack([normalize(d) for d in embeddings[1:]], dim=1)
        student = torch.einsum("bd,bkd->bk", queries, documents)
        student_margin = student[:, :1] - student[:, 1:]
        teacher_margin = teacher[:, :1] - teacher[:, 1:]
        return (student_margin - teacher_margin).pow(2).mean()
