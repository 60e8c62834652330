"""The one small protocol every LLM backend implements.

Two calls, both on a batch of prompts. A prompt is a chat: a list of
``{"role": ..., "content": ...}`` messages (few-shot examples as earlier user/assistant
turns), or a plain string for a single user message; the backend applies the model's
chat template.

- :meth:`LLMBackend.generate`: a sampled answer per prompt, or the reason it failed;
- :meth:`LLMBackend.label_probabilities`: for a fixed set of label strings (``"0".."3"``
  for graded relevance), the probability of each as the answer's first token,
  renormalised over the labels. The answer is never parsed as text, so nothing in a
  prompt can inject a label.
- :meth:`LLMBackend.continuation_logprobs`: for a raw text prefix (no chat template)
  and a continuation, the log-probability of each continuation token given everything
  before it: query likelihood (UPR, ART) reads these.

A failure is returned, not raised: one bad answer must never stop a long run.

Each prompt of a :meth:`~LLMBackend.generate` call has its own sampling settings (its own
seed): a batch is never split by settings, so a server or an engine sees all of it at once.
A backend with ``streams = True`` (a server) takes any number of prompts in one call,
keeps ``concurrency`` requests in flight until all are answered (no barrier between
batches), and hands each answer to ``on_answer(position, answer)`` as it arrives, so the
caller can cache it at once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 64
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Generation:
    text: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class LabelProbabilities:
    probabilities: dict[str, float] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ContinuationLogprobs:
    """log P(token_i | prefix, tokens before i) for each token of a continuation."""

    logprobs: tuple[float, ...] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def mean(self) -> float:
        """The mean log-probability per continuation token (the length-normalised score)."""
        assert self.logprobs, "no log-probabilities"
        return sum(self.logprobs) / len(self.logprobs)


def split_continuation(prefix: str, continuation: str) -> tuple[str, str]:
    """Move the prefix's trailing spaces onto the continuation.

    Sub-word tokenisers attach a space to the word after it (`` what``), so the query's
    first token is the same whether or not the prompt template ends in a space.
    """
    stripped = prefix.rstrip(" ")
    return stripped, " " * (len(prefix) - len(stripped)) + continuation


def renormalise(weights: dict[str, float], labels: Sequence[str]) -> LabelProbabilities:
    """Probabilities over ``labels`` from unnormalised weights; a failure when all are 0."""
    total = sum(weights.get(label, 0.0) for label in labels)
    if not total > 0:
        return LabelProbabilities(None, "no label token among the answer's most probable first tokens")
    return LabelProbabilities({label: weights.get(label, 0.0) / total for label in labels})


def logprob_weights(top: Sequence[tuple[str, float]]) -> dict[str, float]:
    """exp(logprob) of first-token candidates summed by stripped text (" 3" and "3" are one label)."""
    weights: dict[str, float] = {}
    for token, logprob in top:
        key = token.strip()
        weights[key] = weights.get(key, 0.0) + math.exp(logprob)
    return weights


Prompt = str | list[dict[str, str]]


AnswerCallback = Callable[[int, object], None]


def as_messages(prompt: Prompt) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


class LLMBackend(ABC):
    """A model behind one of gradir's backends."""

    #: the backend's name in a spec string (``llamacpp``, ``openai``, ``hf``, ``vllm``)
    kind: str
    #: prompts handed to the backend at once (a server: requests in flight; an engine: its batch)
    concurrency: int = 1
    #: True for a server: one call over any number of prompts, answers reported through ``on_answer``
    streams: bool = False
    #: requests sent again after a retryable failure (servers), over the backend's life
    retries: int = 0

    @property
    @abstractmethod
    def model_id(self) -> str:
        """A readable name of the model (file or model name)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """Changes whenever the model's answers could change (weights, served model)."""

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], settings: Sequence[SamplingSettings]) -> list[Generation]:
        """One answer per prompt, in order, each sampled with its own settings."""

    @abstractmethod
    def label_probabilities(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[LabelProbabilities]:
        """Per prompt, the probability of each label as the first token of the answer."""

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[ContinuationLogprobs]:
        """Per pair, the log-probability of each continuation token after the raw prefix.

        Backends that cannot return them raise a :class:`GradirError` saying so.
        """
        from gradir.errors import GradirError

        raise GradirError(f"the {self.kind} backend cannot score continuations (use llamacpp, hf or openai)")

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for this model: its tokenizer where the backend holds one, else an
        estimate of 1.4 tokens per word (a server's tokenizer is not at hand)."""
        return int(len(text.split()) * 1.4) + 1

    def close(self) -> None:
        """Release the model or connections."""
