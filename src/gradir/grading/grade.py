"""Grading a table of (query, document) pairs into judgments, with any of the graders.

Pairs come from ``gradir mine`` (``query_id, query_text, doc_id, is_source``), or are
the synthetic documents of ``gradir generate documents`` for the ``level`` grader.
Mined candidates other than the source passage are the would-be hard negatives: each is
graded before use, and those graded relevant (grade ≥ ``relevant_grade``) are counted
as relabelled instead of being trained on as negatives (CustomIR's LLM-verified
negatives). The ``unverified`` grader is the baseline that check is measured against: the
source passage is grade 3 and every other mined candidate a grade-0 negative, unread.
The ``likelihood`` grader scores each pair by query likelihood and labels each query's
candidates against its best one (:mod:`gradir.grading.likelihood`), its score fused
with the retriever's (a pair's ``retriever_score``, the ``score`` column of mined pairs)
when ``retriever_weight`` > 0 and with BM25's (``bm25_score``, the ``bm25_score`` column)
when ``bm25_weight`` > 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Set
from dataclasses import dataclass, field
from pathlib import Path

from gradir.collections.problems import ProblemLog
from gradir.collections.records import Document
from gradir.collections.rows import iter_rows, position_unit
from gradir.errors import GradirError
from gradir.grading.cross_encoder import grade_with_cross_encoder
from gradir.grading.likelihood import (
    DEFAULT_MAX_PASSAGE_TOKENS,
    DEFAULT_TEMPERATURE,
    fused_scores,
    labels_from_scores,
    query_likelihoods,
)
from gradir.grading.llm import GRADES, expected_grade, grade_with_llm
from gradir.grading.judgments import Judgment
from gradir.llm import LLMClient

GRADERS = ("likelihood", "llm", "cross-encoder", "level", "unverified")


@dataclass(frozen=True, slots=True)
class Pair:
    query_id: str
    query_text: str
    doc_id: str
    is_source: bool
    retriever_score: float | None = None  # the mining retriever's score; None: not retrieved
    bm25_score: float | None = None  # the document's BM25 score for the query; None: not scored


@dataclass
class Grading:
    judgments: list[Judgment]
    failures: Counter = field(default_factory=Counter)
    relabelled_negatives: int = 0
    mined_negatives: int = 0

    def histogram(self) -> dict[str, int]:
        return grade_histogram(self.judgments)


def grade_histogram(judgments: list[Judgment]) -> dict[str, int]:
    counts = Counter(str(j.grade) for j in judgments)
    return {g: counts.get(g, 0) for g in GRADES}


def read_pairs(path: Path | str, documents: dict[str, Document]) -> list[Pair]:
    path = Path(path)
    log = ProblemLog()
    unit = position_unit(path)
    pairs: list[Pair] = []
    for pos, row in iter_rows(path, log, required=("query_id", "query_text", "doc_id")):
        qid, text, did = row.get("query_id"), row.get("query_text"), row.get("doc_id")
        if not all(isinstance(v, (str, int)) and str(v).strip() for v in (qid, text, did)):
            log.add(path, pos, "missing or empty query_id, query_text or doc_id", "missing field", unit)
            continue
        if str(did) not in documents:
            log.add(path, pos, f"unknown document id '{did}' (not in the corpus)", "unknown document", unit)
            continue
        scores = {column: row.get(column) for column in ("score", "bm25_score")}
        bad = next((c for c, v in scores.items() if v is not None and not isinstance(v, (int, float))), None)
        if bad is not None:
            log.add(path, pos, f"{bad} '{scores[bad]}' is not a number", "bad score", unit)
            continue
        pairs.append(Pair(str(qid), str(text), str(did), bool(row.get("is_source", False)),
                          *(None if v is None else float(v) for v in scores.values())))
    log.check()
    if not pairs:
        raise log.fatal(path, None, "no pairs found")
    return pairs


def grade_pairs(
    pairs: list[Pair],
    documents: dict[str, Document],
    grader: str,
    *,
    client: LLMClient | None = None,
    cross_encoder: Path | str | None = None,
    samples: int = 0,
    relevant_grade: int = 2,
    temperature: float = DEFAULT_TEMPERATURE,
    max_passage_tokens: int | None = None,
    likelihood_prompt: str | None = None,
    retriever_weight: float = 0.0,
    bm25_weight: float = 0.0,
    held_out: Set[str] = frozenset(),
    held_out_retriever_weight: float | None = None,
) -> Grading:
    """Judgments of ``pairs`` by one grader; ``max_passage_tokens`` None keeps each LLM grader's default.

    ``retriever_weight`` and ``bm25_weight`` fuse the likelihood grader's score with the
    pairs' retriever and BM25 scores before labelling (:func:`gradir.grading.likelihood.fused_scores`).
    The ``held_out`` queries (the validation queries of training) are labelled with
    ``held_out_retriever_weight`` instead of ``retriever_weight`` when it is given: at 0 the
    base model's own score stays out of the grades its tuned versions are compared with it on.
    """
    if grader == "likelihood":
        if client is None:
            raise GradirError("the likelihood grader needs an LLM (--llm)")
        scored = query_likelihoods([(p.query_text, documents[p.doc_id].full_text) for p in pairs], client,
                                   max_passage_tokens=max_passage_tokens or DEFAULT_MAX_PASSAGE_TOKENS,
                                   template=likelihood_prompt)
        result = Grading([])
        kept = []
        for pair, (score, error) in zip(pairs, scored):
            if score is None:
                result.failures[error] += 1
            else:
                kept.append((pair, score))
        name = f"likelihood:{client.model_id}"
        if held_out_retriever_weight is None or held_out_retriever_weight == retriever_weight:
            result.judgments = _likelihood_judgments(kept, name, temperature, retriever_weight, bm25_weight)
        else:  # labels are per query, so the two groups are labelled apart and put back in the pairs' order
            by_row: dict[int, Judgment] = {}
            for in_held_out, weight in ((False, retriever_weight), (True, held_out_retriever_weight)):
                rows = [i for i, (p, _) in enumerate(kept) if (p.query_id in held_out) == in_held_out]
                by_row.update(zip(rows, _likelihood_judgments([kept[i] for i in rows], name, temperature, weight, bm25_weight)))
            result.judgments = [by_row[i] for i in range(len(kept))]
    elif grader == "llm":
        if client is None:
            raise GradirError("the llm grader needs an LLM (--llm)")
        graded = grade_with_llm([(p.query_text, documents[p.doc_id].full_text) for p in pairs], client, samples=samples,
                                **({"max_document_tokens": max_passage_tokens} if max_passage_tokens else {}))
        result = Grading([])
        for pair, (probabilities, error) in zip(pairs, graded):
            if probabilities is None:
                result.failures[error] += 1
                continue
            expected = expected_grade(probabilities)
            hard = int(max(GRADES, key=lambda g: probabilities[g]))
            result.judgments.append(
                Judgment(pair.query_id, pair.query_text, pair.doc_id, hard, expected / 3, f"llm:{client.model_id}",
                         expected, tuple(probabilities[g] for g in GRADES))
            )
    elif grader == "cross-encoder":
        if cross_encoder is None:
            raise GradirError("the cross-encoder grader needs a model folder (--model)")
        raw, normalised = grade_with_cross_encoder([(p.query_text, documents[p.doc_id].full_text) for p in pairs], cross_encoder)
        result = Grading([
            Judgment(p.query_id, p.query_text, p.doc_id, int(round(3 * n)), float(n), f"cross-encoder:{Path(cross_encoder).name}", float(r))
            for p, r, n in zip(pairs, raw, normalised)
        ])
    elif grader == "unverified":
        result = Grading([
            Judgment(p.query_id, p.query_text, p.doc_id, 3 if p.is_source else 0, 1.0 if p.is_source else 0.0,
                     "unverified", 3.0 if p.is_source else 0.0)
            for p in pairs
        ])
    else:
        raise GradirError(f"unknown grader '{grader}' (choose from {', '.join(GRADERS)})")
    graded_ids = {(j.query_id, j.doc_id): j for j in result.judgments}
    negatives = [p for p in pairs if not p.is_source and (p.query_id, p.doc_id) in graded_ids]
    result.mined_negatives = len(negatives)
    result.relabelled_negatives = sum(graded_ids[p.query_id, p.doc_id].grade >= relevant_grade for p in negatives)
    return result


def _likelihood_judgments(kept: list[tuple[Pair, float]], name: str, temperature: float, retriever_weight: float,
                          bm25_weight: float) -> list[Judgment]:
    """Judgments from (pair, query likelihood) rows: the labels of each query over its rows, fused as asked."""
    query_ids = [p.query_id for p, _ in kept]
    label_scores = [s for _, s in kept]
    if retriever_weight > 0 or bm25_weight > 0:
        label_scores = fused_scores(query_ids, label_scores, [
            (retriever_weight, [p.retriever_score for p, _ in kept]),
            (bm25_weight, [p.bm25_score for p, _ in kept]),
        ])
        fusion = (("retriever", retriever_weight), ("bm25", bm25_weight))
        name += "".join(f"+{signal}:{w:g}" for signal, w in fusion if w)
    labels = labels_from_scores(query_ids, label_scores, temperature)
    return [Judgment(p.query_id, p.query_text, p.doc_id, grade, prob, name, score)
            for (p, score), (prob, grade) in zip(kept, labels)]
