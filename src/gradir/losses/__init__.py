"""Bi-encoder losses, one module each; every one plugs into sentence-transformers' trainer."""

from gradir.losses.bixse import BiXSELoss
from gradir.losses.infonce import InfoNCELoss
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

__all__ = ["LOSSES", "BiXSELoss", "InfoNCELoss", "ListwiseKLLoss", "MarginMSELoss", "WassersteinLoss"]
