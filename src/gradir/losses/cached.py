"""GradCache: any gradir bi-encoder loss over a large batch in little memory.

Gao et al., "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup"
(2021). The loss is a function of the embeddings only, so

1. embed every column in mini-batches without building graphs;
2. compute the loss on those embeddings (as leaves) and its gradient g = ∂L/∂e;
3. on ``backward``, embed each mini-batch again with the random state of step 1 (same
   dropout masks) and back-propagate g into the model: ∂L/∂θ = Σ_e g_e · ∂e/∂θ.

Memory holds one mini-batch's activations at a time instead of the batch's, and the
loss and gradients equal those of the uncached loss (up to float rounding).

Why not sentence-transformers' own: its cached losses (``CachedMultipleNegativesRankingLoss``,
``CachedGISTEmbedLoss``, ``CachedMultipleNegativesSymmetricRankingLoss``) each cache one
contrastive loss; this wrapper caches any loss of gradir's (BiXSE, Wasserstein, listwise
KL, MarginMSE, InfoNCE) with one implementation, labels and document ids included.

Example::

    from gradir.losses import BiXSELoss, CachedLoss
    loss = CachedLoss(BiXSELoss(model), mini_batch_size=16)   # batch of 256 in 16s
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from gradir.losses.base import BiEncoderLoss


class _RandomState:
    """The CPU (and CUDA) random state at one point, to replay dropout exactly."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


def _mini_batches(features: dict[str, Tensor], size: int) -> Iterator[dict[str, Tensor]]:
    total = next(iter(features.values())).size(0)
    for start in range(0, total, size):
        yield {k: v[start : start + size] if isinstance(v, Tensor) else v for k, v in features.items()}


class CachedLoss(nn.Module):
    def __init__(self, loss: BiEncoderLoss, mini_batch_size: int = 32):
        super().__init__()
        self.loss = loss
        self.model = loss.model
        self.mini_batch_size = mini_batch_size

    def get_config_dict(self) -> dict[str, Any]:
        """The wrapped loss (its own settings listed beside its name on the model card) and the mini-batch size."""
        return {"loss": self.loss, "mini_batch_size": self.mini_batch_size}

    @property
    def citation(self) -> str:
        return getattr(self.loss, "citation", "")

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        columns = list(sentence_features)
        embeddings: list[Tensor] = []
        states: list[list[_RandomState]] = []
        with torch.no_grad():
            for features in columns:
                parts, column_states = [], []
                for batch in _mini_batches(features, self.mini_batch_size):
                    column_states.append(_RandomState())
                    parts.append(self.model(batch)["sentence_embedding"])
                embeddings.append(torch.cat(parts).detach().requires_grad_(True))
                states.append(column_states)
        if not torch.is_grad_enabled():
            return self.loss.loss_in_float32(embeddings, labels)

        # The loss's own parameters (BiXSE's scale and bias) get their gradients here too.
        own_parameters = [
            p for name, p in self.loss.named_parameters() if p.requires_grad and not name.startswith("model.")
        ]
        with torch.enable_grad():
            value = self.loss.loss_in_float32(embeddings, labels)
            grads = torch.autograd.grad(value, [*embeddings, *own_parameters], allow_unused=True)
        embedding_grads = grads[: len(embeddings)]
        parameter_grads = grads[len(embeddings) :]
        result = value.detach().requires_grad_(True)
        result.register_hook(
            partial(self._backward, columns, states, embedding_grads, own_parameters, parameter_grads)
        )
        return result

    def _backward(self, columns, states, embedding_grads, parameters, parameter_grads, grad_output: Tensor) -> None:
        """Replay each mini-batch with its random state and push the cached gradients into the model."""
        for parameter, grad in zip(parameters, parameter_grads):
            if grad is not None:
                parameter.grad = grad * grad_output if parameter.grad is None else parameter.grad + grad * grad_output
        for features, column_states, column_grad in zip(columns, states, embedding_grads):
            if column_grad is None:
                continue
            start = 0
            for batch, state in zip(_mini_batches(features, self.mini_batch_size), column_states):
                current = _RandomState()
                state.restore()
                with torch.enable_grad():
                    part = self.model(batch)["sentence_embedding"]
                    end = start + part.size(0)
                    part.backward(column_grad[start:end] * grad_output)
                current.restore()
                start = end
