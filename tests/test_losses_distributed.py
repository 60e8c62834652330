"""A real two-process run (gloo on CPU): gathered in-batch negatives give the loss of the whole batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gradir.losses import BiXSELoss, InfoNCELoss
from gradir.losses.base import JudgedPairs

WORLD = 2
BATCH = 4  # per process
COLUMNS = 3
DIM = 8


def full_batch(seed: int = 0, with_ids: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    columns = [torch.randn(WORLD * BATCH, DIM, generator=g, dtype=torch.float64) for _ in range(1 + COLUMNS)]
    labels = torch.rand(WORLD * BATCH, COLUMNS, generator=g, dtype=torch.float64)
    if with_ids:  # query q = row // 3, so some queries span the two processes; document d = its position
        rows = torch.arange(WORLD * BATCH, dtype=torch.float64)
        documents = torch.arange(WORLD * BATCH * COLUMNS, dtype=torch.float64).reshape(WORLD * BATCH, COLUMNS)
        labels = torch.cat([labels, (rows // 3)[:, None], documents], dim=1)
    return columns, labels


def judged_pairs(labels: torch.Tensor) -> JudgedPairs:
    """Every query judged for the documents of all its rows, with those rows' labels."""
    return JudgedPairs.from_triples(
        (int(row[COLUMNS]), int(row[COLUMNS + 1 + k]), float(row[k])) for row in labels for k in range(COLUMNS)
    )


def make_loss(name: str) -> nn.Module:
    if name == "infonce":
        return InfoNCELoss(nn.Identity())
    loss = BiXSELoss(nn.Identity()).double()
    if name == "bixse_ids":
        loss.use_judgments(judged_pairs(full_batch(with_ids=True)[1]))
    return loss


def worker(rank: int, name: str, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        columns, labels = full_batch(with_ids=name == "bixse_ids")
        local = [c[rank * BATCH : (rank + 1) * BATCH].clone().requires_grad_(True) for c in columns]
        loss = make_loss(name).compute_loss_from_embeddings(local, labels[rank * BATCH : (rank + 1) * BATCH])
        loss.backward()
        np.save(Path(out_dir) / f"loss{rank}.npy", np.array([loss.item()]))
        np.save(Path(out_dir) / f"grad{rank}.npy", np.stack([t.grad.numpy() for t in local]))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name", ["infonce", "bixse", "bixse_ids"])
def test_two_process_loss_and_gradients_equal_the_single_process_batch(name: str, tmp_path: Path) -> None:
    mp.spawn(worker, args=(name, str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)

    columns, labels = full_batch(with_ids=name == "bixse_ids")
    whole = [c.clone().requires_grad_(True) for c in columns]
    single = make_loss(name).compute_loss_from_embeddings(whole, labels)
    single.backward()

    losses = [np.load(tmp_path / f"loss{r}.npy", allow_pickle=False)[0] for r in range(WORLD)]
    assert np.mean(losses) == pytest.approx(single.item(), rel=1e-9)
    # Each process's backward sums the gradients of every process's loss (the gather's
    # backward is a reduce-scatter), so it holds WORLD x the gradient of the mean loss.
    for rank in range(WORLD):
        grads = np.load(tmp_path / f"grad{rank}.npy", allow_pickle=False) / WORLD
        expected = np.stack([t.grad[rank * BATCH : (rank + 1) * BATCH].numpy() for t in whole])
        np.testing.assert_allclose(grads, expected, rtol=1e-7, atol=1e-10)
