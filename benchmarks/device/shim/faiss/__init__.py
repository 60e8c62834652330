"""Exact inner-product search in PyTorch under FAISS' name, for runs on the lent GPU machine only.

That machine takes at most 64 MiB of files a call and has no FAISS; the faiss-cpu wheel
(19 MB) and the base model (46 MB in float16) do not both fit. gradir's exact search calls
one FAISS function, ``faiss.knn(queries, vectors, k, metric=METRIC_INNER_PRODUCT)``
(brute force, as ``IndexFlatIP`` searches), so this module computes the same thing,
top-k of ``queries @ vectors.T`` in float32, on the GPU when there is one. Only the exact
path exists here: an approximate index is an error, not a silent substitute.
"""

from __future__ import annotations

import numpy as np
import torch

METRIC_INNER_PRODUCT = 0
Index = object


def knn(queries: np.ndarray, vectors: np.ndarray, k: int, metric: int = METRIC_INNER_PRODUCT) -> tuple[np.ndarray, np.ndarray]:
    """Scores and row numbers of the ``k`` largest inner products of each query, best first."""
    if metric != METRIC_INNER_PRODUCT:
        raise NotImplementedError("only inner-product search is provided on the device machine")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    corpus = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(device)
    batch = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(device)
    with torch.no_grad():
        scores, rows = torch.topk(batch @ corpus.T, k, dim=1)
    return scores.cpu().numpy(), rows.cpu().numpy().astype(np.int64)


def _missing(*_args, **_kwargs):
    raise NotImplementedError("approximate FAISS indexes are not provided on the device machine")


IndexHNSWFlat = IndexIVFFlat = IndexFlatIP = index_factory = extract_index_ivf = _missing
