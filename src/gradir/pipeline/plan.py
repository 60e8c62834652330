"""The plan before the spend: LLM calls, texts to encode and training steps a config implies.

In: a config, its collection, which stages are already done in the run directory, and a
few timings measured on this machine with the run's own models (one generated query,
one graded pair, a batch of passages encoded). Out: per stage, the work, the LLM calls
and an estimated time; stages already done under the same settings cost nothing.

Counts that depend on what the LLM writes are estimated with planning ratios measured
on SciFact with the embedded SmolLM2-135M (benchmarks/RESULTS.md, "Query generation
yield" and the synthetic SciFact runs): LLM calls per written query and the share of
queries the round-trip filter keeps. They are marked ``~`` in the table.

Calls already in the LLM call cache are free. The generate stage is run through the
client's cache-only view (:meth:`gradir.llm.LLMClient.cache_only_view`): the same
prompts and seeds as the real run, answered from the cache, so the cached answers are
counted exactly and only the query slots left without an answer are estimated. The
grade stage's pairs exist only after mining; when they do (a resumed run), it is
counted the same way, and otherwise its cached share shows when grading starts (the
progress line says how many calls the cache answered).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from gradir.pipeline.config import PipelineConfig

CALLS_PER_QUERY = 1.45  # LLM answers per written query, retries included (1.44 measured, SciFact, 5 types)
KEPT_SHARE = 0.6  # queries the round-trip filter keeps
POSITIVES_PER_QUERY = 1.5  # training rows per kept query (the source passage and high-graded candidates)
CHECK_PAIRS_PER_QUERY = 10  # grade.check_queries grades each query's base top 10
TRAIN_COST_PER_TEXT = 3.0  # a training step's forward and backward pass against one encoding pass
SCALE_KEYS = "generate.passages, generate.types_per_passage, mine.top_k, train.epochs"


@dataclass
class Timings:
    """Seconds per unit of work, measured once on this machine with the run's models."""

    query: float  # one generated query (one LLM answer)
    pair: float  # one graded pair (LLM grader), 0 for graders without an LLM
    passage: float  # one passage encoded by the base model
    llm_requests: int = 0  # the measurement's own LLM requests (retries included): real calls, not cached

    def as_dict(self) -> dict[str, float]:
        return {"seconds_per_llm_answer": round(self.query, 3), "seconds_per_graded_pair": round(self.pair, 3),
                "seconds_per_encoded_passage": round(self.passage, 4), "llm_requests": self.llm_requests}


@dataclass
class CachedCalls:
    """What a stage run through the cache-only view found: calls answered, and units left to do."""

    answered: int  # calls the cache answered
    remaining: int  # query slots (generate) or pairs (grade) that still need the LLM


@dataclass
class StagePlan:
    name: str
    work: str
    llm_calls: int
    seconds: float
    done: bool

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.name, "work": self.work, "llm_calls": self.llm_calls, "seconds": round(self.seconds, 1),
                "done": self.done}


def measure_timings(context: Any, sample: list[str], done: set[str]) -> Timings:
    """Time one query generation, one graded pair and a batch of passages (no cache involved)."""
    from gradir.llm.base import SamplingSettings
    from gradir.synth.prompts import builtin_examples, examples_for, query_messages, query_template

    config: PipelineConfig = context.config
    passage = sample[0]
    query_seconds = pair_seconds = 0.0
    requests = 0
    if "generate" not in done:
        backend = context.client().backend
        retries = backend.retries
        template = query_template(config.generate.types[0])
        messages = query_messages(template, examples_for(builtin_examples(), config.generate.types[0], 2), passage)
        start = time.perf_counter()
        backend.generate([messages], [SamplingSettings(0.7, 0.95, 48, 0)])
        query_seconds = (time.perf_counter() - start) / max(1, backend.concurrency)
        requests += 1 + backend.retries - retries
    if config.grade.grader in ("llm", "likelihood") and "grade" not in done:
        from gradir.collections.records import Document
        from gradir.grading.grade import Pair, grade_pairs
        from gradir.llm import LLMClient

        client = LLMClient(context.grade_client().backend, cache_dir=False, show_progress=False)
        retries = client.backend.retries
        start = time.perf_counter()
        grade_pairs([Pair("q", "What does this passage report?", "d", False)], {"d": Document("d", passage)},
                    config.grade.grader, client=client, max_passage_tokens=config.grade.max_passage_tokens or None)
        pair_seconds = (time.perf_counter() - start) / max(1, client.backend.concurrency)
        requests += 1 + client.backend.retries - retries
    model = context.encoder().model
    model.encode(sample[:4])  # warm-up
    start = time.perf_counter()
    model.encode(sample)
    return Timings(query_seconds, pair_seconds, (time.perf_counter() - start) / len(sample), requests)


def cached_calls(context: Any, done: set[str]) -> dict[str, CachedCalls]:
    """Run generate (and grade, when its pairs exist) through the cache-only view: the calls already paid for.

    Not counted this way (planned as new calls): written documents, balancing and the
    grader check, whose inputs exist only after stages that encode or write.
    """
    from gradir.pipeline.files import PAIRS
    from gradir.pipeline.stages import pairs_to_grade, sampled_passage_ids
    from gradir.synth.stage import write_queries

    config: PipelineConfig = context.config
    found: dict[str, CachedCalls] = {}
    if "generate" not in done:
        view = context.client().cache_only_view()
        _, tally = write_queries(context.collection.documents, sampled_passage_ids(context)[0], config.generate, view,
                                 config.run.seed)
        found["generate"] = CachedCalls(view.counts.cache_hits, tally["unfilled"])
    mined = "mine" in done and context.path(PAIRS).is_file()
    if config.grade.grader in ("llm", "likelihood") and "grade" not in done and mined and not config.documents.enabled:
        from gradir.grading.stage import pair_grader

        view = context.grade_client().cache_only_view()
        pairs, documents = pairs_to_grade(context, [])
        grading = pair_grader(config.grade, documents, view)(pairs)
        found["grade"] = CachedCalls(view.counts.cache_hits, len(pairs) - len(grading.judgments))
    return found


def plan_run(
    config: PipelineConfig, corpus_size: int, eval_queries: int, done: set[str], timings: Timings,
    cached_passages: int = 0, cached: dict[str, CachedCalls] | None = None,
) -> list[StagePlan]:
    """Per stage: the work the config implies, its LLM calls and its estimated seconds.

    ``cached_passages``: corpus passages whose base-model vectors are already in the
    embedding cache; the filter (or mining) does not encode them again. ``cached``: per
    stage, what :func:`cached_calls` found in the LLM call cache.
    """
    cached = cached or {}
    generate, grade, train = config.generate, config.grade, config.train
    passages = min(generate.passages, corpus_size)
    types = generate.types_per_passage or len(generate.types)
    slots = passages * min(types, len(generate.types)) * generate.per_passage
    kept = math.ceil(slots * (KEPT_SHARE if config.filter.enabled else 1.0))
    written_documents = kept * len(config.documents.levels) if config.documents.enabled else 0
    held_out = math.ceil(kept * train.validation_share)  # queries mined to mine.validation_top_k instead
    pairs = kept * (config.mine.top_k + 1) + held_out * (config.mine.validation_top_k - config.mine.top_k) + written_documents
    check_pairs = grade.check_queries * CHECK_PAIRS_PER_QUERY
    llm_grades = grade.grader in ("llm", "likelihood")
    steps = math.ceil(math.ceil(kept * POSITIVES_PER_QUERY / train.batch_size) * train.epochs)
    if train.max_steps > 0:
        steps = min(steps, train.max_steps)
    step_texts = train.batch_size * (1 + train.list_size)
    encode_corpus = corpus_size * timings.passage
    encode_uncached = (corpus_size - cached_passages) * timings.passage
    encoded = f"{corpus_size} passages encoded" + (f" ({cached_passages} cached)" if cached_passages else "")
    generate_work, generate_calls = f"{slots} query slots", math.ceil(slots * CALLS_PER_QUERY)
    if "generate" in cached:
        found = cached["generate"]
        if found.answered:
            generate_work += f"; {found.answered} answers cached, {found.remaining} slots left to write"
        generate_calls = math.ceil(found.remaining * CALLS_PER_QUERY)
    grade_work, grade_calls = f"~{pairs} pairs ({grade.grader})", pairs if llm_grades else 0
    if "grade" in cached:
        found = cached["grade"]
        grade_work = f"{found.answered + found.remaining} pairs ({grade.grader}); {found.answered} cached"
        grade_calls = found.remaining
    rows = [
        ("sample", f"{passages} passages", 0, 0.0),
        ("generate", generate_work, generate_calls, generate_calls * timings.query),
        ("filter", f"~{kept} of {slots} queries kept; {encoded}" if config.filter.enabled
         else "off", 0, encode_uncached if config.filter.enabled else 0.0),
        ("documents", f"{written_documents} documents" if written_documents else "off", written_documents,
         written_documents * timings.query),
        ("mine", f"top {config.mine.top_k} for ~{kept - held_out} queries, top {config.mine.validation_top_k} for "
         f"~{held_out} held out" + ("" if config.filter.enabled else f"; {encoded}"), 0,
         0.0 if config.filter.enabled else encode_uncached),
        ("grade", grade_work + (f" + {check_pairs} check pairs" if check_pairs else ""),
         grade_calls + check_pairs if llm_grades else 0, (grade_calls + check_pairs) * timings.pair),
        ("train", f"~{steps} steps of {train.batch_size} queries × {1 + train.list_size} texts", 0,
         steps * step_texts * TRAIN_COST_PER_TEXT * timings.passage),
        ("evaluate", f"{eval_queries} queries; {corpus_size} passages encoded by the tuned model", 0, encode_corpus),
        ("report", "report.md, report.html", 0, 0.0),
    ]
    return [StagePlan(name, work, 0 if name in done else calls, 0.0 if name in done else seconds, name in done)
            for name, work, calls, seconds in rows]


def print_plan(plan: list[StagePlan], timings: Timings, backend: str) -> None:
    """The plan as a table on stderr, with the total and the keys that scale it."""
    from rich.table import Table

    from gradir.console import err_console

    table = Table(title="plan (before any LLM call)", title_justify="left")
    for column in ("stage", "work", "LLM calls", "estimate"):
        table.add_column(column, justify="right" if column in ("LLM calls", "estimate") else "left")
    for row in plan:
        table.add_row(row.name, row.work, "done" if row.done else f"~{row.llm_calls}" if row.llm_calls else "",
                      "done" if row.done else _duration(row.seconds))
    err_console.print(table)
    total = sum(r.seconds for r in plan)
    calls = sum(r.llm_calls for r in plan)
    err_console.print(
        f"about {calls} LLM calls and {_duration(total)} in all with {backend} on this machine "
        f"(measured: {timings.query:.2f} s an LLM answer, {timings.pair:.2f} s a graded pair, "
        f"{timings.passage * 1000:.1f} ms a passage encoded). Scale with {SCALE_KEYS}."
    )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
