"""Losses, one module each: bi-encoder losses for sentence-transformers' trainer, reranker losses for its cross-encoder trainer."""

from gradir.losses.bixse import BiXSELoss
from gradir.losses.cached import CachedLoss
from gradir.losses.graded_bce import GradedBCELoss
from gradir.losses.infonce import InfoNCELoss
from gradir.losses.lce import LCELoss
from gradir.losses.listwise_kl import ListwiseKLLoss
from gradir.losses.margin_mse import MarginMSELoss
from gradir.losses.wasserstein import WassersteinLoss

LOSSES = {
    "infonce": InfoNCELoss,
    "bixse": BiXSELoss,
    "wasserstein": WassersteinLoss,
    "listwise_kl": ListwiseKLLoss,
    "margin_mse": MarginMSELoss,
}

RERANKER_LOSSES = {"lce": LCELoss, "bce": GradedBCELoss}

__all__ = [
    "LOSSES",
    "RERANKER_LOSSES",
    "BiXSELoss",
    "CachedLoss",
    "GradedBCELoss",
    "InfoNCELoss",
    "LCELoss",
    "ListwiseKLLoss",
    "MarginMSELoss",
    "WassersteinLoss",
]
