"""InfoNCE: the contrastive baseline every graded loss is measured against.

For query i with positive p_i, the candidates are every positive and hard negative in
the (gathered) batch, C:

    L = -1/B Σ_i log( exp(s·cos(q_i, p_i)) / Σ_{c∈C} exp(s·cos(q_i, c)) )

with scale s = 1/τ = 20 (sentence-transformers' MultipleNegativesRankingLoss default).
The first document column holds the positives, the others hard negatives (the
training-set assembler binarises graded judgments for it). No labels are needed; when
the batch carries ids (gradir's training set), an in-batch document judged relevant for
query i, other than its own positive, is left out of C for query i rather than counted
as a negative.

Without ids it equals sentence-transformers' ``MultipleNegativesRankingLoss`` (with
``gather_across_devices=True`` under several processes; tests/test_losses.py checks the
two against each other); the id-aware masking of judged documents is what it adds, and
why gradir keeps its own.

Reference: van den Oord et al., "Representation Learning with Contrastive Predictive
Coding" (2018); Henderson et al. (2017) for in-batch negatives in retrieval.

Example::

    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from gradir.losses import InfoNCELoss
    model = SentenceTransformer("path/to/model")
    loss = InfoNCELoss(model, scale=20.0)
    # dataset columns: query, positive, [negative_1, ...]
    SentenceTransformerTrainer(model=model, train_dataset=dataset, loss=loss).train()
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from gradir.losses.base import BiEncoderLoss, gathered_documents, normalize, split_labels


class InfoNCELoss(BiEncoderLoss):
    """InfoNCE with in-batch negatives (formula in the module docstring).

    Args:
        model: the SentenceTransformer being trained.
        scale: 1/τ, the inverse temperature of the softmax over cosine similarities.

    Inputs:
        | texts                                         | labels                                      |
        |-----------------------------------------------|---------------------------------------------|
        | (query, positive, [hard negative_1, ...])     | none, or the query's and documents' ids     |

        With ids, in-batch documents judged relevant for the query are left out of its
        negatives (the fair baseline against the graded losses).
    """

    def __init__(self, model: nn.Module, scale: float = 20.0):
        super().__init__(model)
        self.scale = scale

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale}

    @property
    def citation(self) -> str:
        return """
@misc{oord2018cpc,
    title = {Representation Learning with Contrastive Predictive Coding},
    author = {van den Oord, Aaron and Li, Yazhe and Vinyals, Oriol},
    year = {2018},
    eprint = {1807.03748},
    archivePrefix = {arXiv},
}
"""

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        queries = normalize(embeddings[0])
        candidates, own = gathered_documents(embeddings[1:], queries.size(0))
        logits = self.scale * queries @ candidates.T
        _, query_ids, document_ids = split_labels(labels, len(embeddings) - 1)
        judged = self.in_batch_labels(query_ids, document_ids, logits.dtype)
        if judged is not None:
            false_negative = (judged > 0).scatter(1, own[:, :1], False)
            logits = logits.masked_fill(false_negative, float("-inf"))
        return nn.functional.cross_entropy(logits, own[:, 0])
