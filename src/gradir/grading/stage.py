"""The grade stage: mined (query, candidate) pairs in, graded judgments out.

``gradir run`` (:mod:`gradir.pipeline.stages`) and ``gradir grade`` both call
:func:`grade_stage` with the ``[grade]`` settings (:class:`~gradir.pipeline.config.GradeSection`;
the command builds one from its options), so the two paths grade, floor the source
passages and balance the grades the same way. Flows in: the pairs, the documents they
name, the grading LLM (for the ``likelihood`` and ``llm`` graders) and the generating
LLM (for balancing). Flows out: the judgments, the documents balancing wrote, and a
summary of what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradir.collections.records import Document
from gradir.errors import GradirError
from gradir.grading.grade import Grading, Pair, grade_histogram, grade_pairs
from gradir.grading.judgments import Judgment
from gradir.llm import LLMClient

if TYPE_CHECKING:
    from gradir.pipeline.config import GradeSection

LLM_GRADERS = ("llm", "likelihood")


@dataclass
class GradedPairs:
    judgments: list[Judgment]
    summary: dict[str, Any]
    balance_documents: list[dict[str, Any]] = field(default_factory=list)


def pair_grader(settings: GradeSection, documents: dict[str, Document], client: LLMClient | None,
                held_out: Set[str] = frozenset()) -> Callable[[list[Pair]], Grading]:
    """The configured grader as a function of a list of pairs (the grader check calls it too).

    ``held_out``: the queries training holds out for validation, labelled with
    ``settings.validation_retriever_weight`` where that is set.
    """
    return lambda pairs: grade_pairs(
        pairs, documents, settings.grader, client=client, cross_encoder=settings.cross_encoder or None,
        samples=settings.samples, temperature=settings.temperature,
        max_passage_tokens=settings.max_passage_tokens or None, retriever_weight=settings.retriever_weight,
        bm25_weight=settings.bm25_weight, held_out=held_out, held_out_retriever_weight=settings.validation_retriever_weight,
    )


def grade_stage(
    pairs: list[Pair],
    documents: dict[str, Document],
    settings: GradeSection,
    client: LLMClient | None,
    writer: LLMClient | None = None,
    seed: int = 0,
    held_out: Set[str] = frozenset(),
) -> GradedPairs:
    """Grade ``pairs``, raise each source passage to ``settings.source_floor``, and balance when asked.

    ``client`` grades (None for the cross-encoder and unverified graders); ``writer`` is
    the LLM that writes documents for under-represented grades (``settings.balance``);
    ``held_out`` names the validation queries (see :func:`pair_grader`).
    """
    result = pair_grader(settings, documents, client, held_out)(pairs)
    judgments = with_source_floor(result.judgments, pairs, settings.source_floor)
    summary: dict[str, Any] = {
        "grader": settings.grader, "pairs": len(pairs), "histogram": result.histogram(),
        "mined_negatives": result.mined_negatives, "relabelled_negatives": result.relabelled_negatives,
        "grade_failures": dict(result.failures),
    }
    balance_documents: list[dict[str, Any]] = []
    if settings.balance:
        from gradir.grading.balance import balance_grades

        if writer is None:
            raise GradirError("balancing the grades needs an LLM that writes documents")
        balanced = balance_grades(judgments, writer, budget=settings.budget, seed=seed)
        judgments += balanced.added
        balance_documents = [asdict(d) for d in balanced.documents]
        summary["balance"] = {"generations": balanced.generations, "added": len(balanced.added),
                              "asked": dict(balanced.asked), "came_back_at_level": dict(balanced.hit),
                              "before": balanced.before, "after": balanced.after}
    if not judgments:
        raise GradirError("grading produced no judgments (every pair failed); see the failures in the summary")
    summary.update(written=len(judgments), final_histogram=grade_histogram(judgments))
    return GradedPairs(judgments, summary, balance_documents)


def grade_to_files(
    pairs: list[Pair], documents: dict[str, Document], settings: GradeSection, client: LLMClient | None,
    writer: LLMClient | None, seed: int, out: Path, balance_out: Path, held_out: Set[str] = frozenset(),
) -> dict[str, Any]:
    """:func:`grade_stage`, then the judgments written to ``out`` and the balancing's documents to ``balance_out``.

    Without balancing, a ``balance_out`` left by an earlier run is removed (its documents
    would name judgments that no longer exist). The summary is the grade stage's.
    """
    from gradir.grading.judgments import write_judgments
    from gradir.tables import write_table

    graded = grade_stage(pairs, documents, settings, client, writer, seed=seed, held_out=held_out)
    if settings.balance:
        write_table(balance_out, graded.balance_documents)
        graded.summary["balance"]["documents"] = str(balance_out)
    else:
        balance_out.unlink(missing_ok=True)
    write_judgments(out, graded.judgments)
    return graded.summary


def grade_by_level_to_file(written: list, out: Path) -> dict[str, Any]:
    """The ``level`` grader: each written document graded at the level it was written for, into ``out``."""
    from gradir.grading.judgments import write_judgments
    from gradir.grading.level import grade_by_level

    judgments = grade_by_level(written)
    write_judgments(out, judgments)
    return {"written": len(judgments), "grader": "level", "histogram": grade_histogram(judgments)}


def with_source_floor(judgments: list[Judgment], pairs: list[Pair], floor: int) -> list[Judgment]:
    """Raise the grade of each query's source passage to ``floor`` (it is the passage the query was written for).

    A source passage whose grading failed (the LLM gave no answer) gets the floor itself,
    which is what any answer below the floor would have become.
    """
    if floor <= 0:
        return list(judgments)
    sources = {(p.query_id, p.doc_id): p for p in pairs if p.is_source}
    floored = [
        replace(j, grade=max(j.grade, floor), p_relevant=max(j.p_relevant, floor / 3))
        if (j.query_id, j.doc_id) in sources and j.grade < floor else j
        for j in judgments
    ]
    graded = {(j.query_id, j.doc_id) for j in judgments}
    floored += [
        Judgment(p.query_id, p.query_text, p.doc_id, floor, floor / 3, "source-floor", float(floor))
        for key, p in sources.items() if key not in graded
    ]
    return floored
