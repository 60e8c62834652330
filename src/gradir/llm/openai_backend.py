"""Any OpenAI-compatible server: vLLM, SGLang, llama.cpp's server, Ollama, hosted APIs.

Requests run concurrently (asyncio, at most ``concurrency`` in flight), each with a
timeout; 429 and 5xx answers, timeouts, dropped connections and malformed bodies are
retried with exponential backoff and jitter (``Retry-After`` honoured), at most
``max_retries`` times, after which the prompt is a counted failure. The API key comes
from the environment variable named by ``api_key_env`` and is never stored. Label
probabilities come from the first answer token's ``top_logprobs``.

Continuation log-probabilities (query likelihood) use the completions endpoint with the
prompt echoed and its log-probabilities (``echo: true, logprobs: 0, max_tokens: 1``):
vLLM's and SGLang's OpenAI servers and llama-cpp-python's server (started with
``--logits_all true``) return them; the continuation's tokens are those whose text
offset lies at or past the end of the prefix. Servers that do not (OpenAI's hosted chat
models, Ollama, llama.cpp's ``llama-server``) answer without prompt log-probabilities,
and gradir stops with a message naming what is missing rather than grading on nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from gradir.errors import GradirError
from gradir.llm.base import (
    ContinuationLogprobs,
    Generation,
    LLMBackend,
    LabelProbabilities,
    Prompt,
    SamplingSettings,
    as_messages,
    logprob_weights,
    renormalise,
    split_continuation,
)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    pass


class OpenAIBackend(LLMBackend):
    kind = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        top_logprobs: int = 20,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise GradirError(f"openai backend: '{base_url}' is not an http(s) URL")
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.top_logprobs = top_logprobs
        self.retries = 0
        self._echoed = {"with": 0, "without": 0}  # answers with and without prompt log-probabilities

    @property
    def model_id(self) -> str:
        return self.model

    def fingerprint(self) -> str:
        # The served model's name: servers of one model (a fleet) share their cached answers.
        return hashlib.blake2b(self.model.encode(), digest_size=16).hexdigest()

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def generate(self, prompts: Sequence[Prompt], settings: SamplingSettings) -> list[Generation]:
        def body(prompt: Prompt) -> dict[str, Any]:
            return {
                "model": self.model,
                "messages": as_messages(prompt),
                "temperature": settings.temperature,
                "top_p": settings.top_p,
                "max_tokens": settings.max_tokens,
                "seed": settings.seed,
            }

        def parse(answer: dict, _prompt: Prompt) -> Generation:
            text = (answer["choices"][0]["message"].get("content") or "").strip()
            return Generation(text) if text else Generation(None, "empty completion")

        return self._run(prompts, body, parse, lambda reason: Generation(None, reason))

    def label_probabilities(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[LabelProbabilities]:
        def body(prompt: Prompt) -> dict[str, Any]:
            return {
                "model": self.model,
                "messages": as_messages(prompt),
                "temperature": 0.0,
                "max_tokens": 1,
                "logprobs": True,
                "top_logprobs": self.top_logprobs,
            }

        def parse(answer: dict, _prompt: Prompt) -> LabelProbabilities:
            content = (answer["choices"][0].get("logprobs") or {}).get("content") or []
            if not content:
                return LabelProbabilities(None, "the server returned no logprobs")
            top = [(t["token"], t["logprob"]) for t in content[0].get("top_logprobs") or []]
            return renormalise(logprob_weights(top), labels)

        return self._run(prompts, body, parse, lambda reason: LabelProbabilities(None, reason))

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str]) -> list[ContinuationLogprobs]:
        texts = [split_continuation(p, c) for p, c in zip(prefixes, continuations)]
        starts = {prefix + continuation: len(prefix) for prefix, continuation in texts}

        def body(prompt: str) -> dict[str, Any]:
            return {"model": self.model, "prompt": prompt, "echo": True, "logprobs": 0, "max_tokens": 1, "temperature": 0.0}

        def parse(answer: dict, prompt: str) -> ContinuationLogprobs:
            logprobs = answer["choices"][0].get("logprobs") or {}
            tokens, values, offsets = (logprobs.get(k) or [] for k in ("tokens", "token_logprobs", "text_offset"))
            if not values or not offsets or all(v is None for v in values):
                # One such answer may be a fault on the way; three with none ever right is the server.
                self._echoed["without"] += 1
                if self._echoed["with"] == 0 and self._echoed["without"] >= 3:
                    raise GradirError(
                        f"the server at {self.base_url} returned no prompt log-probabilities for {self.model} "
                        "(the likelihood grader needs /v1/completions with echo and logprobs: vLLM, SGLang, or "
                        "llama-cpp-python's server with --logits_all true)"
                    )
                return ContinuationLogprobs(None, "answer without prompt log-probabilities")
            self._echoed["with"] += 1
            start, end = starts[prompt], len(prompt)
            chosen = [v for v, o in zip(values, offsets) if start <= o < end and v is not None]
            if not chosen:
                return ContinuationLogprobs(None, "no token of the continuation among the echoed prompt tokens")
            return ContinuationLogprobs(tuple(float(v) for v in chosen))

        return self._run(
            [p + c for p, c in texts], body, parse, lambda reason: ContinuationLogprobs(None, reason), endpoint="completions"
        )

    def _run(self, prompts: Sequence[Prompt], body: Callable, parse: Callable, failure: Callable,
             endpoint: str = "chat/completions") -> list:
        async def main() -> list:
            limits = httpx.Limits(max_connections=self.concurrency)
            async with httpx.AsyncClient(timeout=self.timeout, limits=limits, headers=self._headers()) as client:
                gate = asyncio.Semaphore(self.concurrency)

                async def one(prompt: Prompt):
                    async with gate:
                        return await self._with_retries(
                            lambda: self._post(client, body(prompt), endpoint), lambda answer: parse(answer, prompt), failure
                        )

                return await asyncio.gather(*(one(p) for p in prompts))

        return asyncio.run(main())

    async def _post(self, client: httpx.AsyncClient, body: dict, endpoint: str) -> dict:
        try:
            response = await client.post(f"{self.base_url}/{endpoint}", json=body)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise _Retryable(f"{type(exc).__name__}") from exc
        if response.status_code in RETRY_STATUS:
            error = _Retryable(f"HTTP {response.status_code}")
            error.retry_after = _retry_after(response)  # type: ignore[attr-defined]
            raise error
        if response.status_code >= 400:
            raise ValueError(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            answer = response.json()
            answer["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Retryable("malformed JSON answer") from exc
        return answer

    async def _with_retries(self, send: Callable[[], Awaitable[dict]], parse: Callable, failure: Callable):
        for attempt in range(self.max_retries + 1):
            try:
                answer = await send()
                return parse(answer)
            except _Retryable as exc:
                if attempt == self.max_retries:
                    return failure(f"{exc} after {self.max_retries} retries")
                self.retries += 1
                delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.5)
                await asyncio.sleep(max(delay, getattr(exc, "retry_after", 0.0) or 0.0))
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                return failure(str(exc) or type(exc).__name__)
        return failure("no answer")


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("retry-after", 0)), 60.0)
    except ValueError:
        return 0.0
