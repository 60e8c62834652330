"""GradCache: the cached loss and its gradients equal the uncached ones."""

from __future__ import annotations

import pytest
import torch

from gradir.losses import BiXSELoss, CachedLoss, InfoNCELoss, WassersteinLoss
from gradir.models import default_model_path

QUERIES = ["vitamin d bones", "blood pressure exercise", "statins", "coffee heart", "sleep obesity", "fibre cancer"]
DOCS_A = [
    "Vitamin D supplementation increases bone density.",
    "Aerobic exercise lowers resting blood pressure.",
    "Statins reduce LDL cholesterol and vascular events.",
    "Coffee is not linked to cardiovascular mortality.",
    "Short sleep is linked to weight gain in children.",
    "Dietary fibre lowers colorectal cancer risk.",
]
DOCS_B = list(reversed(DOCS_A))


@pytest.fixture(scope="module")
def model():
    from sentence_transformers import SentenceTransformer

    student = SentenceTransformer(str(default_model_path()), local_files_only=True)
    student.eval()  # no dropout: the uncached full-batch forward draws other masks than mini-batches
    return student


def features(model, texts: list[str]) -> dict[str, torch.Tensor]:
    return model.preprocess(texts)


def gradients(model, loss, labels) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad()
    for p in loss.parameters():
        p.grad = None
    value = loss([features(model, QUERIES), features(model, DOCS_A), features(model, DOCS_B)], labels)
    value.backward()
    grads = {n: p.grad.detach().clone() for n, p in loss.named_parameters() if p.grad is not None}
    return value.item(), grads


@pytest.mark.parametrize("name", ["infonce", "bixse", "wasserstein"])
def test_cached_loss_and_gradients_equal_the_uncached_ones(model, name: str) -> None:
    make = {"infonce": InfoNCELoss, "bixse": BiXSELoss, "wasserstein": WassersteinLoss}[name]
    labels = torch.tensor([[1.0, 0.25]] * len(QUERIES))
    plain = make(model)
    cached = CachedLoss(make(model), mini_batch_size=2)
    if name == "bixse":
        cached.loss.load_state_dict(plain.state_dict())
    value, grads = gradients(model, plain, labels)
    cached_value, cached_grads = gradients(model, cached, labels)
    assert cached_value == pytest.approx(value, abs=1e-5)
    renamed = {n.removeprefix("loss."): g for n, g in cached_grads.items()}
    assert set(renamed) == set(grads)
    worst = max((renamed[n] - g).abs().max().item() for n, g in grads.items())
    assert worst < 1e-5
    if name == "bixse":
        assert {"log_scale", "bias"} <= set(grads)


def test_cached_loss_replays_dropout_in_training_mode(model) -> None:
    """With dropout on, the cached gradients equal those of the same mini-batch forwards kept in one graph."""
    model.train()
    try:
        labels = torch.tensor([[1.0, 0.0]] * len(QUERIES))
        loss = InfoNCELoss(model)
        torch.manual_seed(0)
        _, cached_grads = gradients(model, CachedLoss(loss, mini_batch_size=3), labels)

        model.zero_grad()
        torch.manual_seed(0)
        columns = []
        for texts in (QUERIES, DOCS_A, DOCS_B):
            column = features(model, texts)  # padded as one column, then cut, as the trainer's batch is
            parts = [
                model({k: v[i : i + 3] if torch.is_tensor(v) else v for k, v in column.items()})["sentence_embedding"]
                for i in range(0, len(texts), 3)
            ]
            columns.append(torch.cat(parts))
        loss.compute_loss_from_embeddings(columns, labels).backward()
        reference = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        worst = max((cached_grads[f"loss.model.{n}"] - g).abs().max().item() for n, g in reference.items())
        assert worst < 1e-5
    finally:
        model.eval()
