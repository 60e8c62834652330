"""What every bi-encoder loss of gradir shares.

Batch layout (sentence-transformers' trainer hands columns in dataset order):
``embeddings[0]`` holds the B queries, ``embeddings[1:]`` K document columns, and
``labels`` is a (B, K) tensor: the soft label, grade or teacher score of query i's
k-th document. Under ``torch.distributed`` the documents (and, for losses that need
them, the queries) are gathered from every process with gradients kept for the local
part, so in-batch negatives grow with the world size; each process computes the loss
of its own queries, and the mean over processes equals the loss of the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.util import all_gather_with_grad, get_rank
from torch import Tensor, nn

from gradir.errors import GradirError


def gather(tensor: Tensor) -> tuple[Tensor, int]:
    """Concatenate a tensor across processes (gradients kept); return it and this rank's row offset."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return all_gather_with_grad(tensor), get_rank() * tensor.size(0)
    return tensor, 0


def documents_by_column(documents: list[Tensor]) -> Tensor:
    """Stack K (N, D) document columns into (N*K, D), column-major: row k*N + i is query i's k-th document."""
    return torch.cat(documents, dim=0)


def own_document_index(batch: int, columns: int, offset: int, world_batch: int, device: torch.device) -> Tensor:
    """(B, K) indices of each local query's own documents among the gathered (N*K) documents."""
    rows = torch.arange(batch, device=device) + offset
    return rows[:, None] + world_batch * torch.arange(columns, device=device)[None, :]


def normalize(embeddings: Tensor) -> Tensor:
    return nn.functional.normalize(embeddings, p=2, dim=-1)


def gathered_documents(columns: list[Tensor], batch: int) -> tuple[Tensor, Tensor]:
    """Unit-length documents of the whole (gathered) batch, (N*K, D), and the (B, K) indices of the local queries' own."""
    gathered = [gather(normalize(d)) for d in columns]
    documents = documents_by_column([g[0] for g in gathered])
    own = own_document_index(batch, len(columns), gathered[0][1], documents.size(0) // len(columns), documents.device)
    return documents, own


class BiEncoderLoss(nn.Module):
    """Embeds the columns with the model and hands them to :meth:`compute_loss_from_embeddings`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        embeddings = embed_columns(self.model, sentence_features)
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        raise NotImplementedError

    def queries_and_labels(self, embeddings: list[Tensor], labels: Tensor | None, name: str) -> tuple[Tensor, Tensor]:
        """Unit-length queries and the (B, K) labels, checked against the number of document columns."""
        queries = normalize(embeddings[0])
        return queries, self.check_labels(labels, queries.size(0), len(embeddings) - 1, name)

    @staticmethod
    def check_labels(labels: Tensor | None, batch: int, columns: int, name: str) -> Tensor:
        if labels is None or labels.dim() != 2 or tuple(labels.shape) != (batch, columns):
            shape = None if labels is None else tuple(labels.shape)
            raise GradirError(f"{name}: expected labels of shape ({batch}, {columns}), one per document column; got {shape}")
        return labels if labels.is_floating_point() else labels.float()
