"""Generating training queries of several types for sampled passages (Promptagator-style few-shot).

For each of ``max_docs`` passages sampled with the seed, and each query type, ``per_doc``
queries are asked for. A failed or rejected answer is asked again with another seed and
a slightly higher temperature, up to ``attempts`` times; every failure and rejection is
counted with its reason.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gradir.collections.records import Document
from gradir.llm import LLMClient, SamplingSettings
from gradir.synth.filters import QueryFilter, clean, fit_length
from gradir.synth.prompts import QUERY_TYPE_NAMES, builtin_examples, examples_for, query_messages, query_template, read_examples
from gradir.synth.records import SyntheticQuery

QUERY_TYPES = QUERY_TYPE_NAMES


@dataclass
class QueryGeneration:
    queries: list[SyntheticQuery]
    passages: int
    truncated: int
    failures: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    unfilled: int = 0
    shortened: int = 0  # answers over the length limit cut to their first sentence or clauses

    @property
    def slots(self) -> int:
        return len(self.queries) + self.unfilled


def query_yield(written: int, unfilled: int, answers: int) -> dict[str, float | None]:
    """Query slots filled, and LLM answers (new or cached) per written query."""
    return {"slot_yield": round(written / max(1, written + unfilled), 4),
            "calls_per_query": round(answers / written, 3) if written else None}


def truncate_passage(text: str, client: LLMClient, max_tokens: int) -> tuple[str, bool]:
    """Cut a passage to ``max_tokens`` tokens of the LLM (counted by its tokenizer when it has one)."""
    count = client.backend.count_tokens
    tokens = count(text)
    if tokens <= max_tokens:
        return text, False
    words = text.split()
    while tokens > max_tokens and len(words) > 1:
        words = words[: max(1, int(len(words) * max_tokens / tokens * 0.95))]
        tokens = count(" ".join(words))
    return " ".join(words), True


def _seed(base: int, slot: int, attempt: int) -> int:
    return (base * 1_000_003 + slot * 97 + attempt) % (2**31 - 1)


def generate_queries(
    documents: dict[str, Document],
    client: LLMClient,
    *,
    types: tuple[str, ...] = QUERY_TYPES,
    per_doc: int = 1,
    max_docs: int | None = 100,
    examples_path: Path | str | None = None,
    shots: int = 2,
    seed: int = 0,
    temperature: float = 0.7,
    max_new_tokens: int = 48,
    max_passage_tokens: int = 350,
    attempts: int = 6,
) -> QueryGeneration:
    templates = {t: query_template(t) for t in types}
    examples = read_examples(examples_path) if examples_path else builtin_examples()
    few_shot = {t: examples_for(examples, t, shots) for t in types}
    doc_ids = list(documents)
    if max_docs is not None and max_docs < len(doc_ids):
        doc_ids = random.Random(seed).sample(doc_ids, max_docs)
    passages, truncated = {}, 0
    for did in doc_ids:
        passages[did], cut = truncate_passage(documents[did].full_text, client, max_passage_tokens)
        truncated += cut
    slots = [(did, t, k) for did in doc_ids for t in types for k in range(per_doc)]
    result = QueryGeneration([], len(doc_ids), truncated)
    accepted: dict[int, SyntheticQuery] = {}
    check = QueryFilter(examples=[text for _, passage, query in examples for text in (passage, query) if text])
    pending = list(range(len(slots)))
    for attempt in range(attempts):
        if not pending:
            break
        prompts, settings = [], []
        for slot in pending:
            did, qtype, _ = slots[slot]
            prompts.append(query_messages(templates[qtype], few_shot[qtype], passages[did]))
            # Each new attempt samples a little hotter, to leave the answer that failed.
            heat = min(1.0, temperature + 0.1 * attempt)
            settings.append(SamplingSettings(heat, 0.95, max_new_tokens, _seed(seed, slot, attempt)))
        answers = client.generate(prompts, settings, what=f"queries (attempt {attempt + 1})")
        still = []
        for slot, answer, setting in zip(pending, answers, settings):
            did, qtype, k = slots[slot]
            if not answer.ok:
                result.failures[answer.error] += 1
                still.append(slot)
                continue
            text = clean(answer.text or "")
            fitted = fit_length(text, qtype)
            result.shortened += fitted != text
            reason = check.reject_reason(fitted, documents[did].full_text, qtype)
            if reason:
                result.rejected[reason] += 1
                still.append(slot)
                continue
            accepted[slot] = SyntheticQuery(
                f"{did}:{qtype}:{k}", fitted, qtype, did, qtype, client.model_id, setting.seed
            )
        pending = still
    result.queries = [accepted[s] for s in sorted(accepted)]
    result.unfilled = len(pending)
    return result
