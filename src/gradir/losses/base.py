"""What every bi-encoder loss of gradir shares.

Batch layout (sentence-transformers' trainer hands columns in dataset order):
``embeddings[0]`` holds the B queries, ``embeddings[1:]`` K document columns, and
``labels`` is a (B, K) tensor: the soft label, grade or teacher score of query i's
k-th document. gradir's training set appends ids to each row, (B, 2K + 1): the K
labels, the query's index, the K documents' indices (:func:`split_labels`). With them
and the loss's :class:`JudgedPairs`, an in-batch document that is judged for a query
(another row's positive of the same query, a candidate two queries share) takes its
judged label instead of 0; without them, documents of other rows count as 0. Under ``torch.distributed`` the documents (and, for losses that need
them, the queries) are gathered from every process with gradients kept for the local
part, so in-batch negatives grow with the world size; each process computes the loss
of its own queries, and the mean over processes equals the loss of the whole batch.
"""

from __future__ import annotations

import math
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


def uniformity(documents: Tensor, t: float = 2.0) -> Tensor:
    """Wang & Isola's uniformity of unit vectors: log of the mean over pairs j ≠ k of exp(−t·‖x_j − x_k‖²).

    Lower when the vectors spread over the sphere, 0 when they all coincide; for unit vectors
    ‖x − y‖² = 2 − 2·cos(x, y). Reference: Wang & Isola, "Understanding Contrastive
    Representation Learning through Alignment and Uniformity on the Hypersphere", ICML 2020.
    """
    distances = torch.pdist(normalize(documents)).pow(2)
    return torch.logsumexp(-t * distances, dim=0) - math.log(distances.numel())


class JudgedPairs:
    """The judged label of (query index, document index) pairs, looked up for whole batches at once."""

    def __init__(self, keys: Tensor, values: Tensor, documents: int):
        self.keys, self.values, self.documents = keys, values, documents

    @classmethod
    def from_triples(cls, triples: Iterable[tuple[int, int, float]]) -> "JudgedPairs":
        rows = list(triples)
        documents = max((d for _, d, _ in rows), default=0) + 1
        keys = torch.tensor([q * documents + d for q, d, _ in rows], dtype=torch.int64)
        values = torch.tensor([v for _, _, v in rows], dtype=torch.float64)
        order = torch.argsort(keys)
        return cls(keys[order], values[order], documents)

    def matrix(self, queries: Tensor, documents: Tensor, dtype: torch.dtype) -> Tensor:
        """(B, M) labels of B query indices against M document indices; 0 where not judged."""
        keys = self.keys.to(queries.device)
        wanted = queries[:, None] * self.documents + documents[None, :]
        wanted = torch.where(documents[None, :] < self.documents, wanted, torch.full_like(wanted, -1))
        position = torch.searchsorted(keys, wanted).clamp_max(max(len(keys) - 1, 0))
        if len(keys) == 0:
            return torch.zeros(wanted.shape, dtype=dtype, device=queries.device)
        found = keys[position] == wanted
        values = self.values.to(device=queries.device, dtype=dtype)[position]
        return torch.where(found, values, torch.zeros_like(values))


def split_labels(labels: Tensor | None, columns: int) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """(labels (B, K) or None, query indices (B,), document indices (B, K)) of a batch's label tensor.

    Accepts (B, K) labels without ids, (B, 2K + 1) labels with ids, and (B, K + 1) ids alone
    (InfoNCE, which has no labels); the ids are None when absent.
    """
    if labels is None or labels.dim() != 2:
        return labels, None, None
    width = labels.size(1)
    if width == 2 * columns + 1:
        ids = labels[:, columns:].round().long()
        return labels[:, :columns], ids[:, 0], ids[:, 1:]
    if width == columns + 1:
        ids = labels.round().long()
        return None, ids[:, 0], ids[:, 1:]
    return labels, None, None


class BiEncoderLoss(nn.Module):
    """Embeds the columns with the model and hands them to :meth:`compute_loss_from_embeddings`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.judged: JudgedPairs | None = None

    def use_judgments(self, judged: JudgedPairs) -> None:
        """Give in-batch documents their judged label for each query (needs ids in the labels)."""
        self.judged = judged

    def in_batch_labels(self, query_ids: Tensor | None, document_ids: Tensor | None, dtype: torch.dtype) -> Tensor | None:
        """(B, N*K) judged labels of the local queries against the gathered batch's documents, or None.

        Document ids are gathered in the column-major order of :func:`documents_by_column`.
        """
        if self.judged is None or query_ids is None or document_ids is None:
            return None
        gathered = documents_by_column([gather(column.contiguous().to(torch.float64))[0] for column in document_ids.T])
        return self.judged.matrix(query_ids, gathered.round().long(), dtype)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        embeddings = embed_columns(self.model, sentence_features)
        return self.loss_in_float32(embeddings, labels)

    def loss_in_float32(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        """:meth:`compute_loss_from_embeddings` in float32 with autocast off.

        Under bfloat16 mixed precision (:mod:`gradir.precision`) the loss may run inside an
        autocast region (a loop that wraps the whole step, as PyTorch's AMP recipe does; the
        Trainer's accelerate wraps only the model's forward and hands back float32). There
        the similarity products would be bfloat16, whose cosines carry about 3 significant
        digits; at the scales these losses use (BiXSE e^s ≈ 20, an InfoNCE temperature of
        0.01) that error reaches the logits. The loss is computed from float32 copies instead
        (gradients flow back to bfloat16 embeddings unchanged).
        """
        with torch.autocast(device_type=embeddings[0].device.type, enabled=False):
            return self.compute_loss_from_embeddings([e.float() for e in embeddings], labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        raise NotImplementedError

    def queries_and_labels(
        self, embeddings: list[Tensor], labels: Tensor | None, name: str
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Unit-length queries, the (B, K) labels (checked against the document columns) and,
        when the batch carries ids, the (B, N*K) judged labels of the in-batch documents."""
        queries = normalize(embeddings[0])
        columns = len(embeddings) - 1
        own, query_ids, document_ids = split_labels(labels, columns)
        own = self.check_labels(own, queries.size(0), columns, name)
        return queries, own.to(queries.dtype), self.in_batch_labels(query_ids, document_ids, queries.dtype)

    @staticmethod
    def check_labels(labels: Tensor | None, batch: int, columns: int, name: str) -> Tensor:
        if labels is None or labels.dim() != 2 or tuple(labels.shape) != (batch, columns):
            shape = None if labels is None else tuple(labels.shape)
            raise GradirError(f"{name}: expected labels of shape ({batch}, {columns}), one per document column; got {shape}")
        return labels if labels.is_floating_point() else labels.float()
