"""Documents written for a query at relevance levels 3..0 (SyCL).

Level 3 fully answers the query, 2 answers it in part, 1 shares its topic without
answering, 0 is unrelated but from the collection's field. Each record keeps the level
it was asked for: the ``level`` grader turns it into a label (level / 3).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gradir.errors import GradirError
from gradir.llm import LLMClient, SamplingSettings
from gradir.synth.filters import PROMPT_ECHO
from gradir.synth.prompts import document_template
from gradir.synth.records import SyntheticDocument, SyntheticQuery


@dataclass
class DocumentGeneration:
    documents: list[SyntheticDocument]
    failures: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)


def generate_documents(
    queries: list[SyntheticQuery],
    client: LLMClient,
    *,
    levels: tuple[int, ...] = (3, 2, 1, 0),
    domain: str = "the same field as the query",
    seed: int = 0,
    temperature: float = 0.7,
    max_new_tokens: int = 160,
    min_words: int = 8,
) -> DocumentGeneration:
    template, instructions = document_template()
    unknown = [lv for lv in levels if lv not in instructions]
    if unknown:
        raise GradirError(f"--levels: unknown level(s) {unknown} (choose from {sorted(instructions)})")
    jobs = [(q, level) for q in queries for level in levels]
    prompts = [template.format(domain=domain, instruction=instructions[lv], query=q.text) for q, lv in jobs]
    settings = [SamplingSettings(temperature, 0.95, max_new_tokens, seed + i) for i in range(len(jobs))]
    answers = client.generate(prompts, settings, what="documents")
    result = DocumentGeneration([])
    for (query, level), answer, setting in zip(jobs, answers, settings):
        if not answer.ok:
            result.failures[answer.error] += 1
            continue
        text = " ".join((answer.text or "").split())
        if text.lower().startswith("passage:"):
            text = text[len("passage:") :].strip()
        if len(text.split()) < min_words:
            result.rejected["too short"] += 1
            continue
        if PROMPT_ECHO.search(text):
            result.rejected["prompt echo"] += 1
            continue
        result.documents.append(
            SyntheticDocument(f"syn:{query.query_id}:L{level}", query.query_id, query.text, text, level, client.model_id, setting.seed)
        )
    return result
