"""BiXSE: pointwise binary cross-entropy on graded (probabilistic) relevance labels.

For the local queries q_i and every document d_j of the (gathered) batch:

    z_ij = s·cos(q_i, d_j) + b,        s = exp(log_s), s and b learnable (SigLIP-style)
    L    = -1/B Σ_i Σ_j [ w+ · y_ij · log σ(z_ij) + w- · (1 - y_ij) · log(1 - σ(z_ij)) ]  +  λ·U
    U    = log 1/(M(M-1)) Σ_{j≠k} exp(-2‖d_j - d_k‖²)   over the batch's M unit documents

y_ij is the soft label of the pair (the graded probability, e.g. expected grade / 3)
when d_j is one of query i's labelled documents, and 0 for the in-batch documents of
other queries — unless the batch carries document ids and d_j is judged for query i
(another row's positive of the same query, a shared candidate), in which case its
judged label is used. One labelled document per query is enough; hard negatives with
their graded labels may be added as further columns. b starts negative (-10) because
most pairs are negatives; s starts at 20. s and b are loss parameters: gradir's trainer
gives them their own learning rate and saves them with each checkpoint.

λ·U is optional (λ = ``uniformity_weight``, 0 by default): Wang & Isola's uniformity of the
batch's documents, which grows as the documents draw together. On NFCorpus every loss
tuned with human grades pulls the documents together as it trains, and the held-out
nDCG falls as they do (benchmarks/embedding_spread.py); the term pushes back. Measured
2026-12-04 (2 CPU cores, seed 0): λ = 1 lifts BiXSE's 20-step probe on 40 held-out dev
queries (+2.15 nDCG@10 over the base against +1.21 without), but not the 60-step NFCorpus
test figure (31.92 against 32.48 without; base 31.59): one seed, not a default.

References: Tsirigotis et al., "BiXSE: Improving Dense Retrieval via Probabilistic
Graded Relevance Distillation", arXiv 2508.06781 (2025); Zhai et al., "Sigmoid Loss
for Language Image Pre-Training" (SigLIP, 2023) for the learnable scale and bias; Wang &
Isola, "Understanding Contrastive Representation Learning through Alignment and Uniformity
on the Hypersphere" (ICML 2020) for U.

Example::

    from gradir.losses import BiXSELoss
    loss = BiXSELoss(model)                 # scale and bias are trained with the model
    # dataset columns: query, document_1, [document_2, ...], label = [y_1, y_2, ...]
    SentenceTransformerTrainer(model=model, train_dataset=dataset, loss=loss).train()
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gradir.losses.base import BiEncoderLoss, gathered_documents, uniformity

class BiXSELoss(BiEncoderLoss):
    """BiXSE over the batch's query × document matrix (formula in the module docstring).

    Args:
        model: the SentenceTransformer being trained.
        init_scale: s at the start (trained: ``learnable``).
        init_bias: b at the start; negative because most pairs of a batch are negatives.
        positive_weight: w+, the weight of the y_ij · log σ(z_ij) term.
        negative_weight: w-, the weight of the (1 - y_ij) · log(1 - σ(z_ij)) term.
        learnable: train s and b (at the loss learning rate) or keep them fixed.
        uniformity_weight: λ, the weight of the documents' uniformity U (0: the plain BiXSE loss).

    Inputs:
        | texts                                  | labels                                            |
        |----------------------------------------|---------------------------------------------------|
        | (query, document_1, ..., document_K)   | (B, K) soft labels y in [0, 1]: p_relevant        |

        In gradir's training sets K = ``list_size``: the positive first, then documents
        judged below it; the labels may carry document ids after the K values
        (:func:`gradir.losses.base.split_labels`).
    """

    def __init__(
        self,
        model: nn.Module,
        init_scale: float = 20.0,
        init_bias: float = -10.0,
        positive_weight: float = 1.0,
        negative_weight: float = 1.0,
        learnable: bool = True,
        uniformity_weight: float = 0.0,
    ):
        super().__init__(model)
        self.init_scale, self.init_bias, self.learnable = init_scale, init_bias, learnable
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)), requires_grad=learnable)
        self.bias = nn.Parameter(torch.tensor(float(init_bias)), requires_grad=learnable)
        self.positive_weight = positive_weight
        self.negative_weight = negative_weight
        self.uniformity_weight = uniformity_weight

    def get_config_dict(self) -> dict[str, Any]:
        return {"init_scale": self.init_scale, "init_bias": self.init_bias, "positive_weight": self.positive_weight,
                "negative_weight": self.negative_weight, "learnable": self.learnable,
                "uniformity_weight": self.uniformity_weight}

    @property
    def citation(self) -> str:
        return """
@misc{tsirigotis2025bixse,
    title = {BiXSE: Improving Dense Retrieval via Probabilistic Graded Relevance Distillation},
    author = {Tsirigotis, Christos and Adlakha, Vaibhav and Monteiro, Joao and Courville, Aaron and Taslakian, Perouz and others},
    year = {2025},
    eprint = {2508.06781},
    archivePrefix = {arXiv},
}
"""

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        queries, labels, in_batch = self.queries_and_labels(embeddings, labels, "bixse")
        documents, own = gathered_documents(embeddings[1:], queries.size(0))
        targets = labels.new_zeros(queries.size(0), documents.size(0)) if in_batch is None else in_batch
        targets = targets.scatter(1, own, labels).clamp(0.0, 1.0)
        logits = self.log_scale.exp() * queries @ documents.T + self.bias
        log_p = nn.functional.logsigmoid(logits)
        log_not_p = nn.functional.logsigmoid(-logits)
        per_pair = self.positive_weight * targets * log_p + self.negative_weight * (1 - targets) * log_not_p
        loss = -per_pair.sum(dim=1).mean()
        if self.uniformity_weight:
            loss = loss + self.uniformity_weight * uniformity(documents)
        return loss
