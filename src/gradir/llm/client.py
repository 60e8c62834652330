"""The LLM as the stages use it: a backend behind the call cache, with counts of what happened."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gradir.console import progress
from gradir.cache_dir import default_cache_dir
from gradir.llm.base import ContinuationLogprobs, Generation, LLMBackend, LabelProbabilities, Prompt, SamplingSettings
from gradir.llm.call_cache import CallCache, call_key

NOT_CACHED = "not in the call cache"


def _chunk_size(backend: LLMBackend) -> int:
    """Prompts per call of a backend that does not stream: as many as it runs at once.

    In-process backends answer one prompt at a time (chunks of 1: a crash loses at most
    the call in flight); a batching engine (hf, vLLM) gets a batch of ``concurrency``.
    """
    return max(1, backend.concurrency)


def _chunks(indices: list[int], size: int, groups: Sequence[str] | None) -> list[list[int]]:
    """Chunks of ``size`` indices; with ``groups`` and one prompt at a time, one chunk per group instead."""
    if groups is None or size > 1:
        return [indices[start : start + size] for start in range(0, len(indices), size)]
    by_group: dict[str, list[int]] = {}
    for i in indices:
        by_group.setdefault(groups[i], []).append(i)
    return list(by_group.values())


@dataclass
class CallCounts:
    llm_calls: int = 0
    cache_hits: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def record_failure(self, reason: str) -> None:
        self.failed += 1
        self.failures[reason] = self.failures.get(reason, 0) + 1


@dataclass(frozen=True)
class UsageMark:
    """The client's counts at one moment; :meth:`LLMClient.usage_since` gives what came after it."""

    llm_calls: int
    cache_hits: int
    failed: int
    failures: dict[str, int]
    retries: int


class LLMClient:
    """Generation and label probabilities through the cache; failures are counted, never cached."""

    def __init__(self, backend: LLMBackend, cache_dir: Path | str | None | bool = None, show_progress: bool = True):
        self.backend = backend
        self.counts = CallCounts()
        self.show_progress = show_progress
        self.cache_only = False
        self._cache: CallCache | None = None
        if cache_dir is not False:
            directory = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)
            self._cache = CallCache(directory / "llm_calls.sqlite")
        self._fingerprint = backend.fingerprint()

    def cache_only_view(self) -> LLMClient:
        """A client on the same backend and cache that never calls the backend.

        Cached calls are answered as usual; every other call fails with ``NOT_CACHED``
        and is counted in ``counts.failed``. The plan runs a stage through it to count
        the calls that are already paid for.
        """
        view = LLMClient.__new__(LLMClient)
        view.backend, view._cache, view._fingerprint = self.backend, self._cache, self._fingerprint
        view.counts, view.show_progress, view.cache_only = CallCounts(), False, True
        return view

    @property
    def model_id(self) -> str:
        return f"{self.backend.kind}:{self.backend.model_id}"

    def usage_mark(self) -> UsageMark:
        counts = self.counts
        return UsageMark(counts.llm_calls, counts.cache_hits, counts.failed, dict(counts.failures), self.backend.retries)

    def usage_since(self, mark: UsageMark | None = None) -> dict[str, object]:
        """The calls made since ``mark`` (all of them without one): new calls, cache hits, failures by reason, retries."""
        mark = mark or UsageMark(0, 0, 0, {}, 0)
        counts = self.counts
        failures = {k: v - mark.failures.get(k, 0) for k, v in counts.failures.items() if v - mark.failures.get(k, 0)}
        return {
            "llm_calls": counts.llm_calls - mark.llm_calls,
            "cache_hits": counts.cache_hits - mark.cache_hits,
            "failed": counts.failed - mark.failed,
            "failures": failures,
            "retries": self.backend.retries - mark.retries,
            "model": self.model_id,
        }

    def generate(self, prompts: Sequence[Prompt], settings: Sequence[SamplingSettings], what: str = "generating") -> list[Generation]:
        """One answer per prompt, each with its own sampling settings (and so its own seed)."""
        keys = [
            call_key(self.backend.kind, self._fingerprint, "generate", p, s.as_dict()) for p, s in zip(prompts, settings)
        ]

        def call(indices: list[int], **stream) -> list:
            return self.backend.generate([prompts[i] for i in indices], [settings[i] for i in indices], **stream)

        return self._through_cache(keys, call, lambda g: {"text": g.text}, lambda v: Generation(v["text"]), what,
                                   failure=lambda e: Generation(None, e))

    def label_probabilities(self, prompts: Sequence[Prompt], labels: Sequence[str], what: str = "grading") -> list[LabelProbabilities]:
        keys = [call_key(self.backend.kind, self._fingerprint, "labels", p, {"labels": list(labels)}) for p in prompts]

        def call(indices: list[int], **stream) -> list:
            return self.backend.label_probabilities([prompts[i] for i in indices], labels, **stream)

        return self._through_cache(
            keys, call, lambda r: {"probabilities": r.probabilities}, lambda v: LabelProbabilities(v["probabilities"]), what,
            failure=lambda e: LabelProbabilities(None, e),
        )

    def continuation_logprobs(self, prefixes: Sequence[str], continuations: Sequence[str], what: str = "scoring") -> list[ContinuationLogprobs]:
        """Log-probabilities of each continuation's tokens after its raw prefix (query likelihood).

        Pairs that share a prefix go to the backend together, so an in-process backend
        decodes each passage once for all its queries.
        """
        keys = [
            call_key(self.backend.kind, self._fingerprint, "continuation", p, {"continuation": c})
            for p, c in zip(prefixes, continuations)
        ]

        def call(indices: list[int], **stream) -> list:
            return self.backend.continuation_logprobs(
                [prefixes[i] for i in indices], [continuations[i] for i in indices], **stream
            )

        return self._through_cache(
            keys, call, lambda r: {"logprobs": list(r.logprobs)}, lambda v: ContinuationLogprobs(tuple(v["logprobs"])),
            what, groups=prefixes, failure=lambda e: ContinuationLogprobs(None, e),
        )

    def _through_cache(self, keys, call, encode, decode, what: str, groups: Sequence[str] | None = None, *,
                       failure) -> list:
        cached = self._cache.get_many(list(dict.fromkeys(keys))) if self._cache is not None else {}
        results: list = [None] * len(keys)
        missing: list[int] = []
        for i, key in enumerate(keys):
            if key in cached:
                results[i] = decode(cached[key])
                self.counts.cache_hits += 1
            else:
                missing.append(i)
        if self.cache_only:
            for i in missing:
                results[i] = failure(NOT_CACHED)
                self.counts.record_failure(NOT_CACHED)
            return results
        with progress() as bar:
            hits = len(keys) - len(missing)
            label = f"{what} ({hits} of {len(keys)} cached)" if hits else what
            task = bar.add_task(label, total=len(missing), visible=self.show_progress and bool(missing))

            def store(answers: dict[int, object]) -> None:
                fresh = {}
                for i, answer in answers.items():
                    results[i] = answer
                    self.counts.llm_calls += 1
                    if answer.ok:
                        fresh[keys[i]] = encode(answer)
                    else:
                        self.counts.record_failure(answer.error)
                if fresh and self._cache is not None:
                    self._cache.put_many(fresh)
                bar.advance(task, len(answers))

            if self.backend.streams and missing:
                # A server: one pool over every missing prompt; each answer is cached as it arrives.
                call(missing, on_answer=lambda position, answer: store({missing[position]: answer}))
            else:
                for chunk in _chunks(missing, _chunk_size(self.backend), groups):
                    store(dict(zip(chunk, call(chunk))))
        return results

    def close(self) -> None:
        self.backend.close()
        if self._cache is not None:
            self._cache.close()
