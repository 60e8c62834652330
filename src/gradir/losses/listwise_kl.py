"""Listwise distillation from a cross-encoder teacher, with a small contrastive term.

Each query i has a list of K documents, the source passage first, with teacher scores
t_ik (normalised to [0, 1] by the grader):

    L_KL  = 1/B Σ_i KL( softmax(t_i / τ_t) ‖ softmax(cos(q_i, d_i·) / τ_s) )
    L_NCE = -1/B Σ_i log( exp(cos(q_i, d_i1)/τ) / Σ_{c∈C_i} exp(cos(q_i, c)/τ) )
    L     = L_KL + λ · L_NCE

with τ_t = 0.3, τ_s = 0.05, λ = 0.1, τ = 0.01. C_i holds the in-batch source passages
and every hard negative of the (gathered) batch, without the documents judged for query
i (its own list and, when the batch carries ids, other rows' documents judged for it)
whose teacher score exceeds 0.6 × its top teacher score (likely false negatives).

Reference: Tamber et al., "Conventional Contrastive Learning Often Falls Short:
Improving Dense Retrieval with Cross-Encoder Listwise Distillation and Synthetic
Data", arXiv 2505.19274 (2025).

Example::

    from gradir.losses import ListwiseKLLoss
    loss = ListwiseKLLoss(model)
    # dataset columns: query, source_passage, candidate_2..candidate_K,
    # label = [teacher score of each document]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gradir.losses.base import BiEncoderLoss, gathered_documents, normalize


class ListwiseKLLoss(BiEncoderLoss):
    """Listwise KL distillation plus a contrastive term (formula in the module docstring).

    Args:
        model: the SentenceTransformer being trained.
        teacher_temperature: τ_t of the teacher's softmax over the list.
        student_temperature: τ_s of the student's softmax over the list's cosines.
        infonce_weight: λ, the weight of the contrastive term (0: KL only).
        infonce_temperature: τ of the contrastive term.
        false_negative_ratio: candidates whose teacher score exceeds this share of the
            query's top score are not used as its contrastive negatives.

    Inputs:
        | texts                                         | labels                                         |
        |-----------------------------------------------|------------------------------------------------|
        | (query, source passage, candidate_2..K)       | (B, K) teacher scores in [0, 1]: p_relevant    |
    """

    def __init__(
        self,
        model: nn.Module,
        teacher_temperature: float = 0.3,
        student_temperature: float = 0.05,
        infonce_weight: float = 0.1,
        infonce_temperature: float = 0.01,
        false_negative_ratio: float = 0.6,
    ):
        super().__init__(model)
        self.teacher_temperature = teacher_temperature
        self.student_temperature = student_temperature
        self.infonce_weight = infonce_weight
        self.infonce_temperature = infonce_temperature
        self.false_negative_ratio = false_negative_ratio

    def get_config_dict(self) -> dict[str, Any]:
        return {"teacher_temperature": self.teacher_temperature, "student_temperature": self.student_temperature,
                "infonce_weight": self.infonce_weight, "infonce_temperature": self.infonce_temperature,
                "false_negative_ratio": self.false_negative_ratio}

    @property
    def citation(self) -> str:
        return """
@misc{tamber2025listwise,
    title = {Conventional Contrastive Learning Often Falls Short: Improving Dense Retrieval with Cross-Encoder Listwise Distillation and Synthetic Data},
    author = {Tamber, Manveer Singh and Kazi, Suleman and Sourabh, Vivek and Lin, Jimmy},
    year = {2025},
    eprint = {2505.19274},
    archivePrefix = {arXiv},
}
"""

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        queries, teacher, in_batch = self.queries_and_labels(embeddings, labels, "listwise_kl")
        local_documents = torch.stack([normalize(d) for d in embeddings[1:]], dim=1)  # (B, K, D)
        student = torch.einsum("bd,bkd->bk", queries, local_documents)
        kl = nn.functional.kl_div(
            torch.log_softmax(student / self.student_temperature, dim=1),
            torch.log_softmax(teacher / self.teacher_temperature, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        if self.infonce_weight == 0:
            return kl
        documents, own = gathered_documents(embeddings[1:], queries.size(0))
        logits = queries @ documents.T / self.infonce_temperature
        threshold = self.false_negative_ratio * teacher.max(dim=1, keepdim=True).values
        likely_positive = teacher > threshold
        likely_positive[:, 0] = False  # the source passage is the target, never masked
        mask = torch.zeros_like(logits, dtype=torch.bool)
        if in_batch is not None:
            mask = in_batch > threshold
        mask = mask.scatter(1, own, likely_positive)
        logits = logits.masked_fill(mask, float("-inf"))
        nce = nn.functional.cross_entropy(logits, own[:, 0])
        return kl + self.infonce_weight * nce
