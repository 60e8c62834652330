"""Wasserstein listwise loss on documents at several relevance levels (SyCL).

For the local queries q_i and every document d_j of the (gathered) batch, with the
grade g_ij of query i's own documents, the judged grade of other rows' documents that
are judged for query i (when the batch carries ids), and 0 for the rest:

    P_i = softmax_j( cos(q_i, d_j) / τ )       predicted distribution over the batch
    T_i = g_ij / Σ_k g_ik                       target distribution (``target="linear"``, the default)
    T_i = softmax_j( g_ij )                     (``target="softmax"``, the authors' code)

Why linear by default: with in-batch documents in the list, a softmax over raw grades is
close to uniform. One grade-2 document among 63 grade-0 documents (16 queries × lists
of 4) gets e² / (e² + 63) = 10% of the target's mass and the 63 non-relevant documents
90%; fitting P_i to that pushes the relevant document's similarity down to the level of
the rest. On NFCorpus (60 steps, seed 0) that target took validation nDCG@10 from 37.6 to
11.0 (Gaussian form) and 25.0 (EMD form); benchmarks/RESULTS.md. A linear target puts
no mass on grade-0 documents and splits it among the judged ones in proportion to grade.

``form="gaussian"`` (the default; the form of the authors' released code): the rows
P_i and T_i are samples from two distributions over R^N (N documents); fit a Gaussian
to each (mean μ, covariance Σ across the batch's queries) and take the squared
2-Wasserstein (Fréchet) distance between the fits:

    L = ‖μ_P − μ_T‖² + tr Σ_P + tr Σ_T − 2 ‖C_Pᵀ C_T‖_*

where C = (X − μ)/√(B−1) is the centred (B × N) sample matrix, so Σ = CᵀC, and the
nuclear norm ‖C_Pᵀ C_T‖_* (the sum of its singular values, a B × B matrix) equals
tr (Σ_P^{1/2} Σ_T Σ_P^{1/2})^{1/2} without forming an N × N square root.

``form="emd"``: the 1-D Wasserstein (earth mover's) distance between P_i and T_i
along the grade axis (each document placed at its grade, documents of other queries at
0), averaged over queries; with the row sorted by decreasing grade g:

    L = 1/B Σ_i Σ_k | CDF(P_i)_k − CDF(T_i)_k | · (g_k − g_{k+1})

Reference: Esfandiarpoor et al., "Beyond Contrastive Learning: Synthetic Data Enables
List-wise Training with Multiple Levels of Relevance" (SyCL), arXiv 2503.23239 (2025).

Example::

    from gradir.losses import WassersteinLoss
    loss = WassersteinLoss(model, temperature=0.05)        # form="gaussian", target="linear"
    # dataset columns: query, document_1..document_K, label = [grade_1, ..., grade_K]
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from gradir.errors import GradirError
from gradir.losses.base import BiEncoderLoss, gathered_documents


def gaussian_w2_squared(predicted: Tensor, target: Tensor) -> Tensor:
    """Squared 2-Wasserstein distance between Gaussian fits of two (B, N) sample matrices."""
    predicted, target = predicted.double(), target.double()
    samples = predicted.size(0)
    factor = 1.0 / max(samples - 1, 1) ** 0.5
    centred_p = (predicted - predicted.mean(dim=0, keepdim=True)) * factor
    centred_t = (target - target.mean(dim=0, keepdim=True)) * factor
    mean_term = (predicted.mean(dim=0) - target.mean(dim=0)).pow(2).sum()
    trace_term = centred_p.pow(2).sum() + centred_t.pow(2).sum()
    cross = centred_p @ centred_t.T  # (B, B); its singular values are those of Σ_P^{1/2} Σ_T^{1/2}
    # A tiny ridge keeps the gradient of the nuclear norm finite when singular values vanish.
    nuclear = torch.linalg.svdvals(cross + 1e-12 * torch.eye(samples, dtype=cross.dtype, device=cross.device)).sum()
    return (mean_term + trace_term - 2.0 * nuclear).clamp_min(0.0)


def emd_1d(predicted: Tensor, target: Tensor, grades: Tensor) -> Tensor:
    """Mean over rows of the 1-D Wasserstein distance along the grade axis.

    Each document sits at its grade; W1 = Σ_k |CDF_p − CDF_t|_k · (g_k − g_{k+1}) over the
    row sorted by decreasing grade, so documents of equal grade share one location and
    their order does not matter.
    """
    order = torch.argsort(grades, dim=1, descending=True, stable=True)
    sorted_grades = grades.gather(1, order)
    gaps = sorted_grades[:, :-1] - sorted_grades[:, 1:]
    cdf_p = predicted.gather(1, order).cumsum(dim=1)[:, :-1]
    cdf_t = target.gather(1, order).cumsum(dim=1)[:, :-1]
    return ((cdf_p - cdf_t).abs() * gaps).sum(dim=1).mean()


def target_distribution(grades: Tensor, kind: str = "linear") -> Tensor:
    """Each row's target: grades normalised to sum 1 (a row with no positive grade: uniform), or their softmax."""
    if kind == "softmax":
        return torch.softmax(grades, dim=1)
    positive = grades.clamp_min(0.0)
    totals = positive.sum(dim=1, keepdim=True)
    uniform = torch.full_like(positive, 1.0 / positive.size(1))
    return torch.where(totals > 0, positive / totals.clamp_min(1e-12), uniform)


class WassersteinLoss(BiEncoderLoss):
    """Wasserstein distance between predicted and graded distributions (module docstring).

    Args:
        model: the SentenceTransformer being trained.
        temperature: τ of the predicted softmax over cosine similarities.
        form: ``"gaussian"`` (batch-level Fréchet distance, the authors' code) or
            ``"emd"`` (per-query earth mover's distance along the grade axis).
        target: ``"linear"`` (grades normalised to sum 1 per query) or ``"softmax"``
            (a softmax over the grades, the authors' code; near uniform over a large batch).

    Inputs:
        | texts                                         | labels                                          |
        |-----------------------------------------------|-------------------------------------------------|
        | (query, document_1..document_K)               | (B, K) integer grades 0-3 (not probabilities)   |
    """

    def __init__(
        self,
        model: nn.Module,
        temperature: float = 0.05,
        form: Literal["gaussian", "emd"] = "gaussian",
        target: Literal["linear", "softmax"] = "linear",
    ):
        super().__init__(model)
        if form not in ("gaussian", "emd"):
            raise GradirError(f"wasserstein: unknown form '{form}' (choose gaussian or emd)")
        if target not in ("linear", "softmax"):
            raise GradirError(f"wasserstein: unknown target '{target}' (choose linear or softmax)")
        self.temperature = temperature
        self.form = form
        self.target = target

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "form": self.form, "target": self.target}

    @property
    def citation(self) -> str:
        return """
@misc{esfandiarpoor2025sycl,
    title = {Beyond Contrastive Learning: Synthetic Data Enables List-wise Training with Multiple Levels of Relevance},
    author = {Esfandiarpoor, Reza and Zerveas, George and Zhang, Ruochen and Mgonzo, Macton and Eickhoff, Carsten and Bach, Stephen H.},
    year = {2025},
    eprint = {2503.23239},
    archivePrefix = {arXiv},
}
"""

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        queries, grades, in_batch = self.queries_and_labels(embeddings, labels, "wasserstein")
        documents, own = gathered_documents(embeddings[1:], queries.size(0))
        grade_matrix = grades.new_zeros(own.size(0), documents.size(0)) if in_batch is None else in_batch
        grade_matrix = grade_matrix.scatter(1, own, grades)
        predicted = torch.softmax(queries @ documents.T / self.temperature, dim=1)
        target = target_distribution(grade_matrix, self.target)
        if self.form == "gaussian":
            return gaussian_w2_squared(predicted, target).to(queries.dtype)
        return emd_1d(predicted, target, grade_matrix)
