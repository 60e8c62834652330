"""Each loss against its formula worked out independently, plus the properties a ranking loss must have."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import linalg
from torch import nn

from gradir.losses import BiXSELoss, InfoNCELoss, ListwiseKLLoss, MarginMSELoss, WassersteinLoss
from gradir.losses.base import JudgedPairs
from gradir.losses.wasserstein import emd_1d

IDENTITY = nn.Identity()


def unit(rows: list[list[float]]) -> torch.Tensor:
    t = torch.tensor(rows, dtype=torch.float64)
    return t / t.norm(dim=1, keepdim=True)


def np_unit(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


Q = unit([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3]])
D1 = unit([[0.9, 0.3, 0.1], [0.0, 0.8, 0.5]])
D2 = unit([[0.2, 0.9, 0.0], [1.0, 0.0, 0.1]])
D3 = unit([[0.0, 0.1, 1.0], [0.3, 0.3, 0.3]])


def test_infonce_known_value_equals_sentence_transformers_mnrl() -> None:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    ours = InfoNCELoss(IDENTITY, scale=20.0).compute_loss_from_embeddings([Q, D1, D2], None)
    q, docs = np_unit(Q), np.concatenate([np_unit(D1), np_unit(D2)])
    logits = 20.0 * q @ docs.T
    expected = np.mean([-(logits[i, i] - np.log(np.exp(logits[i]).sum())) for i in range(2)])
    assert ours.item() == pytest.approx(expected, abs=1e-9)
    mnrl = MultipleNegativesRankingLoss(IDENTITY, scale=20.0).compute_loss_from_embeddings([Q, D1, D2], None)
    assert ours.item() == pytest.approx(mnrl.item(), abs=1e-9)


def test_bixse_known_value() -> None:
    labels = torch.tensor([[1.0, 0.5], [0.25, 0.0]], dtype=torch.float64)
    loss = BiXSELoss(IDENTITY, init_scale=10.0, init_bias=-3.0).double()
    value = loss.compute_loss_from_embeddings([Q, D1, D2], labels).item()
    q, docs = np_unit(Q), np.concatenate([np_unit(D1), np_unit(D2)])  # columns: d1 of q0, d1 of q1, d2 of q0, d2 of q1
    z = 10.0 * q @ docs.T - 3.0
    y = np.zeros((2, 4))
    y[0, 0], y[0, 2], y[1, 1], y[1, 3] = 1.0, 0.5, 0.25, 0.0
    sig = 1 / (1 + np.exp(-z))
    expected = -np.mean(np.sum(y * np.log(sig) + (1 - y) * np.log(1 - sig), axis=1))
    assert value == pytest.approx(expected, rel=1e-6)  # the scale is stored as a float32 log


def test_bixse_with_uniformity_adds_the_documents_uniformity() -> None:
    labels = torch.tensor([[1.0, 0.5], [0.25, 0.0]], dtype=torch.float64)
    plain = BiXSELoss(IDENTITY, init_scale=10.0, init_bias=-3.0).double()
    spread = BiXSELoss(IDENTITY, init_scale=10.0, init_bias=-3.0, uniformity_weight=0.5).double()
    docs = np.concatenate([np_unit(D1), np_unit(D2)])
    pairs = [np.sum((docs[j] - docs[k]) ** 2) for j in range(4) for k in range(4) if j != k]
    u = np.log(np.mean(np.exp(-2.0 * np.array(pairs))))
    value = spread.compute_loss_from_embeddings([Q, D1, D2], labels).item()
    assert value == pytest.approx(plain.compute_loss_from_embeddings([Q, D1, D2], labels).item() + 0.5 * u, rel=1e-6)
    assert spread.get_config_dict()["uniformity_weight"] == 0.5


def test_judged_pairs_look_up_labels_and_give_zero_elsewhere() -> None:
    table = JudgedPairs.from_triples([(0, 3, 0.5), (1, 0, 1.0), (0, 0, 0.25)])
    matrix = table.matrix(torch.tensor([0, 1, 2]), torch.tensor([0, 3, 7]), torch.float64)
    assert matrix.tolist() == [[0.25, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]


def test_in_batch_documents_judged_for_a_query_take_their_judged_label() -> None:
    # Query 0's positive (document 7) is also query 1's second document; query 1 is judged
    # for document 7 at 0.5 and query 0 for query 1's first document (5) at 0.25.
    d2 = torch.stack([D2[0], D1[0]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.5]], dtype=torch.float64)
    ids = torch.tensor([[0, 7, 9], [1, 5, 7]], dtype=torch.float64)  # query, document_1, document_2
    judged = JudgedPairs.from_triples([(0, 7, 1.0), (0, 9, 0.0), (0, 5, 0.25), (1, 5, 1.0), (1, 7, 0.5)])
    plain = BiXSELoss(IDENTITY, init_scale=10.0, init_bias=-3.0).double()
    with_ids = BiXSELoss(IDENTITY, init_scale=10.0, init_bias=-3.0).double()
    with_ids.use_judgments(judged)
    value = with_ids.compute_loss_from_embeddings([Q, D1, d2], torch.cat([labels, ids], dim=1)).item()
    q, docs = np_unit(Q), np.concatenate([np_unit(D1), np_unit(d2)])  # columns: 7, 5, 9, 7
    sig = 1 / (1 + np.exp(-(10.0 * q @ docs.T - 3.0)))
    y = np.array([[1.0, 0.25, 0.0, 1.0], [0.5, 1.0, 0.0, 0.5]])
    expected = -np.mean(np.sum(y * np.log(sig) + (1 - y) * np.log(1 - sig), axis=1))
    assert value == pytest.approx(expected, rel=1e-6)
    # Without the table the same batch counts the other rows' documents as 0.
    assert plain.compute_loss_from_embeddings([Q, D1, d2], labels).item() != pytest.approx(value, rel=1e-3)


def test_infonce_leaves_out_an_in_batch_document_judged_relevant_for_the_query() -> None:
    # Query 1's positive (document 4) is judged relevant for query 0 too: not a negative of query 0.
    loss = InfoNCELoss(IDENTITY, scale=20.0)
    loss.use_judgments(JudgedPairs.from_triples([(0, 3, 1.0), (0, 4, 1.0), (1, 4, 1.0)]))
    ids = torch.tensor([[0, 3], [1, 4]], dtype=torch.float64)
    value = loss.compute_loss_from_embeddings([Q, D1], ids).item()
    logits = 20.0 * np_unit(Q) @ np_unit(D1).T
    expected = np.mean([-(logits[0, 0] - np.log(np.exp(logits[0, :1]).sum())),
                        -(logits[1, 1] - np.log(np.exp(logits[1]).sum()))])
    assert value == pytest.approx(expected, abs=1e-9)


def test_bixse_scale_and_bias_are_learnable_parameters() -> None:
    loss = BiXSELoss(IDENTITY)
    names = {name for name, p in loss.named_parameters() if p.requires_grad}
    assert names == {"log_scale", "bias"}
    assert loss.bias.item() < 0


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_wasserstein_gaussian_equals_the_frechet_formula_with_matrix_square_roots() -> None:
    grades = torch.tensor([[3.0, 1.0, 0.0], [2.0, 0.0, 1.0]], dtype=torch.float64)
    value = WassersteinLoss(IDENTITY, temperature=0.1, target="softmax").compute_loss_from_embeddings([Q, D1, D2, D3], grades).item()
    q = np_unit(Q)
    docs = np.concatenate([np_unit(D1), np_unit(D2), np_unit(D3)])
    scores = q @ docs.T / 0.1
    p = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    g = np.zeros((2, 6))
    g[0, [0, 2, 4]] = [3, 1, 0]
    g[1, [1, 3, 5]] = [2, 0, 1]
    t = np.exp(g) / np.exp(g).sum(1, keepdims=True)
    cov_p, cov_t = np.cov(p, rowvar=False), np.cov(t, rowvar=False)
    root_p = linalg.sqrtm(cov_p)
    cross = np.real(linalg.sqrtm(root_p @ cov_t @ root_p))
    expected = np.sum((p.mean(0) - t.mean(0)) ** 2) + np.trace(cov_p + cov_t - 2 * cross)
    assert value == pytest.approx(expected, abs=1e-6)


def test_wasserstein_linear_target_puts_no_mass_on_grade_0_and_the_default_uses_it() -> None:
    from gradir.losses.wasserstein import target_distribution

    # One grade-2 document among 63 grade-0 ones (16 queries x lists of 4): the softmax target is near uniform.
    grades = torch.zeros(1, 64, dtype=torch.float64)
    grades[0, 0] = 2.0
    assert target_distribution(grades, "softmax")[0, 0].item() == pytest.approx(math.exp(2) / (math.exp(2) + 63))
    assert target_distribution(grades)[0, 0].item() == 1.0
    mixed = target_distribution(torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    assert mixed.tolist() == [[0.75, 0.25, 0.0], [pytest.approx(1 / 3)] * 3]
    # The default loss is the EMD/Gaussian distance to that target: zero when the prediction equals it.
    grades = torch.tensor([[3.0, 1.0, 0.0], [2.0, 0.0, 1.0]], dtype=torch.float64)
    emd = WassersteinLoss(IDENTITY, temperature=0.1, form="emd").compute_loss_from_embeddings([Q, D1, D2, D3], grades).item()
    q, docs = np_unit(Q), np.concatenate([np_unit(D1), np_unit(D2), np_unit(D3)])
    p = np.exp(q @ docs.T / 0.1)
    p /= p.sum(1, keepdims=True)
    g = np.zeros((2, 6))
    g[0, [0, 2, 4]] = [3, 1, 0]
    g[1, [1, 3, 5]] = [2, 0, 1]
    t = g / g.sum(1, keepdims=True)
    expected = 0.0
    for i in range(2):
        order = np.argsort(-g[i], kind="stable")
        gaps = g[i, order][:-1] - g[i, order][1:]
        expected += np.sum(np.abs(np.cumsum(p[i, order])[:-1] - np.cumsum(t[i, order])[:-1]) * gaps) / 2
    assert emd == pytest.approx(expected, abs=1e-9)


def test_emd_1d_moves_mass_along_the_grade_order() -> None:
    # All mass on the top document vs all on the third: it travels two steps.
    p = torch.tensor([[0.0, 0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0, 0.0]])
    assert emd_1d(p, t, torch.tensor([[3.0, 2.0, 1.0]])).item() == pytest.approx(2.0)
    assert emd_1d(t, t, torch.tensor([[3.0, 2.0, 1.0]])).item() == 0.0


def test_listwise_kl_known_value_and_false_negative_mask() -> None:
    teacher = torch.tensor([[1.0, 0.7, 0.1], [0.9, 0.2, 0.3]], dtype=torch.float64)
    value = ListwiseKLLoss(IDENTITY).compute_loss_from_embeddings([Q, D1, D2, D3], teacher).item()
    q = np_unit(Q)
    cols = [np_unit(D1), np_unit(D2), np_unit(D3)]
    student = np.stack([np.sum(q * c, axis=1) for c in cols], axis=1)
    t = teacher.numpy()

    def log_softmax(x: np.ndarray) -> np.ndarray:
        return x - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)) - x.max(1, keepdims=True)

    lt, ls = log_softmax(t / 0.3), log_softmax(student / 0.05)
    kl = np.mean(np.sum(np.exp(lt) * (lt - ls), axis=1))
    docs = np.concatenate(cols)  # index k*2 + i
    logits = q @ docs.T / 0.01
    logits[0, 2] = -np.inf  # query 0's second document: 0.7 > 0.6 * 1.0, a likely false negative
    nce = np.mean([-(logits[i, i] - np.log(np.exp(logits[i][np.isfinite(logits[i])]).sum())) for i in range(2)])
    assert value == pytest.approx(kl + 0.1 * nce, rel=1e-9)


def test_margin_mse_known_value() -> None:
    teacher = torch.tensor([[0.9, 0.1], [0.8, 0.6]], dtype=torch.float64)
    value = MarginMSELoss(IDENTITY, init_scale=4.0).compute_loss_from_embeddings([Q, D1, D2], teacher).item()
    s1, s2 = np.sum(np_unit(Q) * np_unit(D1), 1), np.sum(np_unit(Q) * np_unit(D2), 1)
    expected = np.mean((4.0 * (s1 - s2) - (teacher[:, 0] - teacher[:, 1]).numpy()) ** 2)
    assert value == pytest.approx(expected, rel=1e-6)  # the scale is stored as a float32 log


def graded_losses() -> list[tuple[str, nn.Module]]:
    return [
        ("infonce", InfoNCELoss(IDENTITY)),
        ("bixse", BiXSELoss(IDENTITY).double()),
        ("wasserstein", WassersteinLoss(IDENTITY)),
        ("wasserstein_emd", WassersteinLoss(IDENTITY, form="emd")),
        ("listwise_kl", ListwiseKLLoss(IDENTITY)),
        ("margin_mse", MarginMSELoss(IDENTITY)),
    ]


def ranked_batch(agree: bool, batch: int = 6, columns: int = 4, dim: int = 16, seed: int = 0):
    """Queries with K documents whose similarity order agrees with (or reverses) the grades."""
    g = torch.Generator().manual_seed(seed)
    queries = nn.functional.normalize(torch.randn(batch, dim, generator=g, dtype=torch.float64), dim=1)
    noise = torch.randn(batch, columns, dim, generator=g, dtype=torch.float64)
    mix = torch.linspace(0.9, 0.1, columns, dtype=torch.float64)
    if not agree:
        mix = mix.flip(0)
    docs = mix[None, :, None] * queries[:, None, :] + (1 - mix[None, :, None]) * nn.functional.normalize(noise, dim=2)
    grades = torch.linspace(3, 0, columns, dtype=torch.float64).repeat(batch, 1)
    return queries, [docs[:, k] for k in range(columns)], grades


def labels_for(name: str, grades: torch.Tensor) -> torch.Tensor:
    return grades / 3 if name in ("bixse", "listwise_kl", "margin_mse") else grades


@pytest.mark.parametrize(("name", "loss"), graded_losses(), ids=[n for n, _ in graded_losses()])
def test_agreeing_ranking_has_lower_loss_than_the_reversed_one(name: str, loss: nn.Module) -> None:
    q, docs, grades = ranked_batch(agree=True)
    good = loss.compute_loss_from_embeddings([q, *docs], labels_for(name, grades))
    q, docs, grades = ranked_batch(agree=False)
    bad = loss.compute_loss_from_embeddings([q, *docs], labels_for(name, grades))
    assert good.item() < bad.item()


@pytest.mark.parametrize(("name", "loss"), graded_losses(), ids=[n for n, _ in graded_losses()])
def test_a_step_pushes_the_higher_grade_up_with_finite_gradients(name: str, loss: nn.Module) -> None:
    q, docs, grades = ranked_batch(agree=False, seed=1)
    q = q.clone().requires_grad_(True)
    docs = [d.clone().requires_grad_(True) for d in docs]

    def margin() -> float:
        qn = nn.functional.normalize(q, dim=1)
        top = (qn * nn.functional.normalize(docs[0], dim=1)).sum(1)
        bottom = (qn * nn.functional.normalize(docs[-1], dim=1)).sum(1)
        return (top - bottom).mean().item()

    before = margin()
    value = loss.compute_loss_from_embeddings([q, *docs], labels_for(name, grades))
    value.backward()
    for t in [q, *docs]:
        assert t.grad is not None and torch.isfinite(t.grad).all()
    with torch.no_grad():
        for t in [q, *docs]:
            t -= 0.05 * t.grad / (t.grad.norm() + 1e-12)
    assert margin() > before


@pytest.mark.parametrize(("name", "loss"), graded_losses(), ids=[n for n, _ in graded_losses()])
def test_permuting_the_queries_of_a_batch_changes_nothing(name: str, loss: nn.Module) -> None:
    q, docs, grades = ranked_batch(agree=True, seed=2)
    grades = grades[torch.randperm(grades.size(0), generator=torch.Generator().manual_seed(0))]
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    a = loss.compute_loss_from_embeddings([q, *docs], labels_for(name, grades))
    b = loss.compute_loss_from_embeddings([q[perm], *[d[perm] for d in docs]], labels_for(name, grades[perm]))
    assert a.item() == pytest.approx(b.item(), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", ["bixse", "wasserstein", "wasserstein_emd"])
def test_permuting_a_list_changes_nothing_for_order_free_losses(name: str) -> None:
    loss = dict(graded_losses())[name]
    q, docs, grades = ranked_batch(agree=True, seed=3)
    order = [2, 0, 3, 1]
    a = loss.compute_loss_from_embeddings([q, *docs], labels_for(name, grades))
    b = loss.compute_loss_from_embeddings([q, *[docs[k] for k in order]], labels_for(name, grades[:, order]))
    assert a.item() == pytest.approx(b.item(), rel=1e-6, abs=1e-9)


def test_wrong_label_shape_is_a_clear_error() -> None:
    from gradir.errors import GradirError

    with pytest.raises(GradirError, match=r"bixse: expected labels of shape \(2, 2\)"):
        BiXSELoss(IDENTITY).compute_loss_from_embeddings([Q.float(), D1.float(), D2.float()], torch.ones(2))
    assert math.isfinite(InfoNCELoss(IDENTITY).compute_loss_from_embeddings([Q, D1], None).item())


def test_under_bf16_autocast_the_loss_is_computed_in_float32_from_the_bf16_embeddings() -> None:
    """Mixed precision: the encoder's outputs are bfloat16, the loss is not (gradir.precision)."""
    labels = torch.tensor([[1.0, 0.5], [0.25, 0.0]])
    loss = BiXSELoss(IDENTITY, init_scale=20.0, init_bias=-10.0)
    embeddings = [t.to(torch.bfloat16).requires_grad_(True) for t in (Q, D1, D2)]
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        value = loss.loss_in_float32(embeddings, labels)
        in_bf16 = loss.compute_loss_from_embeddings(embeddings, labels)
    exact = loss.compute_loss_from_embeddings([e.detach().float() for e in embeddings], labels)
    assert value.dtype == torch.float32 and value.item() == pytest.approx(exact.item(), abs=1e-6)
    # Left to autocast, the similarities are bfloat16 and the loss visibly off.
    assert abs(in_bf16.item() - exact.item()) > 1e-4
    value.backward()
    assert all(e.grad is not None and e.grad.dtype == torch.bfloat16 for e in embeddings)
