"""Balancing the middle grades (Li et al.): ask for documents at the grades that are short.

Graded collections tend to pile up at 0 and 3. Given a target share per grade (uniform
by default), while a middle grade (1 or 2) is below its target count and the budget of
LLM generations lasts, a document is written for a query at that level (the SyCL
prompt), graded by the same LLM grader, and kept with the grade it was given; the
report counts how many came back at the level they were asked for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from gradir.collections.records import Document
from gradir.grading.grade import Pair, grade_histogram, grade_pairs
from gradir.grading.judgments import Judgment
from gradir.llm import LLMClient
from gradir.synth.documents import generate_documents
from gradir.synth.records import SyntheticDocument, SyntheticQuery

MIDDLE_GRADES = (1, 2)


@dataclass
class Balancing:
    added: list[Judgment] = field(default_factory=list)
    documents: list[SyntheticDocument] = field(default_factory=list)
    asked: Counter = field(default_factory=Counter)
    hit: Counter = field(default_factory=Counter)
    generations: int = 0
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)


def balance_grades(
    judgments: list[Judgment],
    client: LLMClient,
    *,
    target: dict[int, float] | None = None,
    budget: int = 100,
    batch: int = 8,
    seed: int = 0,
) -> Balancing:
    target = target or {g: 0.25 for g in range(4)}
    report = Balancing(before=grade_histogram(judgments))
    counts = Counter(j.grade for j in judgments)  # kept up to date as judgments are added: no recount per batch
    queries = {j.query_id: j.query_text for j in judgments}
    order = sorted(queries)
    cursor = 0
    while report.generations < budget:
        total = sum(counts.values())
        short = [g for g in MIDDLE_GRADES if counts[g] < target.get(g, 0) * total]
        if not short or not order:
            break
        level = min(short, key=lambda g: counts[g] / max(target[g] * total, 1e-9))
        wanted = min(batch, budget - report.generations)
        asked = [order[(cursor + k) % len(order)] for k in range(wanted)]
        cursor += wanted
        fake_queries = [SyntheticQuery(q, queries[q], "balance", "", "balance", client.model_id, seed) for q in asked]
        written = generate_documents(fake_queries, client, levels=(level,), seed=seed + report.generations)
        # A query may be asked again for the same level: number each round's documents.
        written.documents = [replace(d, doc_id=f"{d.doc_id}:b{report.generations + k}") for k, d in enumerate(written.documents)]
        report.generations += wanted
        report.asked[level] += wanted
        if not written.documents:
            continue
        corpus = {d.doc_id: Document(d.doc_id, d.text) for d in written.documents}
        pairs = [Pair(d.query_id, d.query_text, d.doc_id, False) for d in written.documents]
        graded = grade_pairs(pairs, corpus, "llm", client=client)
        by_id = {j.doc_id: j for j in graded.judgments}
        for document in written.documents:
            judgment = by_id.get(document.doc_id)
            if judgment is None:
                continue
            report.documents.append(document)
            report.added.append(judgment)
            counts[judgment.grade] += 1
            report.hit[level] += judgment.grade == level
    report.after = grade_histogram([*judgments, *report.added])
    return report
