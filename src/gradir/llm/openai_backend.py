"""Any OpenAI-compatible server: vLLM, SGLang, llama.cpp's server, Ollama, hosted APIs.

Requests run from one continuously fed pool (asyncio, ``concurrency`` in flight: a new
request starts as soon as any finishes, so one slow answer holds one slot, not a batch),
and each answer goes to ``on_answer`` as it arrives. Every request has a
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
    AnswerCallback,
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
    streams = True

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

    def generate(
        self, prompts: Sequence[Prompt], settings: Sequence[SamplingSettings], on_answer: AnswerCallback | None = None
    ) -> list[Generation]:
        def body(i: int) -> dict[str, Any]:
            return {
                "model": self.model,
                "messages": as_messages(prompts[i]),
                "temperature": settings[i].temperature,
                "top_p": settings[i].top_p,
                "max_tokens": settings[i].max_tokens,
                "seed": settings[i].seed,
            }

        def parse(answer: dict, _i: int) -> Generation:
            text = (answer["choices"][0]["message"].get("content") or "").strip()
            return Generation(text) if text else Generation(None, "empty completion")

        return self._run(len(prompts), body, parse, lambda reason: Generation(None, reason), on_answer=on_answer)

    def label_probabilities(
        self, prompts: Sequence[Prompt], labels: Sequence[str], on_answer: AnswerCallback | None = None
    ) -> list[LabelProbabilities]:
        def body(i: int) -> dict[str, Any]:
            return {
                "model": self.model,
                "messages": as_messages(prompts[i]),
                "temperature": 0.0,
                "max_tokens": 1,
                "logprobs": True,
                "top_logprobs": self.top_logprobs,
            }

        def parse(answer: dict, _i: int) -> LabelProbabilities:
            content = (answer["choices"][0].get("logprobs") or {}).get("content") or []
            if not content:
                return LabelProbabilities(None, "the server returned no logprobs")
            top = [(t["token"], t["logprob"]) for t in content[0].get("top_logprobs") or []]
            return renormalise(logprob_weights(top), labels)

        return self._run(len(prompts), body, parse, lambda reason: LabelProbabilities(None, reason), on_answer=on_answer)

    def continuation_logprobs(
        self, prefixes: Sequence[str], continuations: Sequence[str], on_answer: AnswerCallback | None = None
    ) -> list[ContinuationLogprobs]:
        texts = [split_continuation(p, c) for p, c in zip(prefixes, continuations)]

        def body(i: int) -> dict[str, Any]:
            prompt = texts[i][0] + texts[i][1]
            return {"model": self.model, "prompt": prompt, "echo": True, "logprobs": 0, "max_tokens": 1, "temperature": 0.0}

        def parse(answer: dict, i: int) -> ContinuationLogprobs:
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
            start, end = len(texts[i][0]), len(texts[i][0]) + len(texts[i][1])
            chosen = [v for v, o in zip(values, offsets) if start <= o < end and v is not None]
            if not chosen:
                return ContinuationLogprobs(None, "no token of the continuation among the echoed prompt tokens")
            return ContinuationLogprobs(tuple(float(v) for v in chosen))

        return self._run(
            len(texts), body, parse, lambda reason: ContinuationLogprobs(None, reason), endpoint="completions",
            on_answer=on_answer,
        )

    def _run(self, count: int, body: Callable[[int], dict], parse: Callable[[dict, int], Any], failure: Callable,
             endpoint: str = "chat/completions", on_answer: AnswerCallback | None = None) -> list:
        """Answers to requests 0..count-1 from a pool of ``concurrency`` workers; ``on_answer`` hears each at once."""
        results: list = [None] * count

        async def main() -> None:
            limits = httpx.Limits(max_connections=self.concurrency)
            async with httpx.AsyncClient(timeout=self.timeout, limits=limits, headers=self._headers()) as client:
                pending = iter(range(count))

                async def worker() -> None:
                    for i in pending:  # one shared iterator: a worker takes the next request when it is free
                        results[i] = await self._with_retries(
                            lambda: self._post(client, body(i), endpoint), lambda answer: parse(answer, i), failure
                        )
                        if on_answer is not None:
                            on_answer(i, results[i])

                await asyncio.gather(*(worker() for _ in range(min(self.concurrency, count))))

        asyncio.run(main())
        return results

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
