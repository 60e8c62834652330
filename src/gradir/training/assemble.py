"""From judgments to the training set each loss needs.

Every loss sees the same queries and positives: one row per judged document whose grade
reaches ``threshold`` (a positive), that document first, then ``list_size - 1`` other
documents of the same query. ``positives_per_query`` caps a query's rows (its highest
grades first, ties broken with the seed) so that queries with hundreds of positives do not
outweigh the rest: the evaluation averages over queries, not over positives. Which others
depends on the loss:

- ``infonce``: documents judged below the threshold (the judgments binarised), sampled
  with the seed; the dataset has ``query, positive, negative_*``.
- ``bixse``, ``margin_mse``: documents judged below the positive's grade, sampled with
  the seed; labels are ``p_relevant``.
- ``listwise_kl`` (labels ``p_relevant``) and ``wasserstein`` (labels the integer
  grades): the query's other graded candidates ranked by the teacher (``p_relevant``,
  then the raw score), taken at evenly spaced ranks so that a list spans the teacher's
  whole ordering, as in listwise distillation over retrieved candidates (Tamber et al.).

Only when a query has too few judged documents are lists filled with corpus documents
the query has no judgment for (grade 0); :class:`TrainingSet` counts them.

The ``label`` column holds the K labels, then the ids the losses use to look up the
judged label of every in-batch document (:mod:`gradir.losses.base`): the query's index
and the K documents' indices, all as numbers (ids are exact in float32 below 2^24).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from gradir.collections.records import Document
from gradir.errors import GradirError
from gradir.grading.judgments import Judgment
from gradir.losses.base import JudgedPairs
from gradir.training_defaults import DEFAULT_THRESHOLD

GRADE_LABEL_LOSSES = {"wasserstein"}
TEACHER_RANKED_LOSSES = {"listwise_kl", "wasserstein"}
MAX_EXACT_ID = 2**24  # integers above this are not exact in the float32 label tensor


@dataclass
class TrainingSet:
    """The rows a trainer sees, the judged label of every (query, document) pair, and counts."""

    dataset: object  # datasets.Dataset
    judged: JudgedPairs
    queries: int
    fillers: int  # documents added from the corpus because a query had too few judged ones

    def summary(self) -> dict[str, int]:
        return {"rows": self.dataset.num_rows, "queries": self.queries, "filler_documents": self.fillers}


def resolve_threshold(judgments: list[Judgment], threshold: int) -> int:
    """``threshold``, or for 0 (the default) half the judgments' top grade rounded up: 2 of 0-3, 1 of 0-1 or 0-2."""
    if threshold > 0:
        return threshold
    return max(1, -(-max((j.grade for j in judgments), default=1) // 2))


def label_of(judgment: Judgment, loss: str) -> float:
    return float(judgment.grade) if loss in GRADE_LABEL_LOSSES else judgment.p_relevant


def _teacher_order(judgments: list[Judgment]) -> list[Judgment]:
    return sorted(judgments, key=lambda j: (-j.p_relevant, -j.score, j.doc_id))


def _evenly_spaced(ranked: list[Judgment], count: int) -> list[Judgment]:
    if count >= len(ranked):
        return list(ranked)
    if count == 1:
        return [ranked[0]]
    step = (len(ranked) - 1) / (count - 1)
    return [ranked[round(k * step)] for k in range(count)]


def _fillers(rng: random.Random, doc_ids: list[str], excluded: set[str], count: int, qid: str) -> list[str]:
    """``count`` distinct corpus documents outside ``excluded``: rejection sampling, then an explicit pool."""
    chosen: list[str] = []
    for _ in range(20 * count):
        if len(chosen) == count:
            return chosen
        did = rng.choice(doc_ids)
        if did not in excluded and did not in chosen:
            chosen.append(did)
    pool = [d for d in doc_ids if d not in excluded and d not in chosen]
    if len(pool) < count - len(chosen):
        raise GradirError(
            f"query '{qid}': a list of this size needs {count} more documents than the query has judged, "
            f"but the corpus has only {len(pool) + len(chosen)} it has no judgment for (lower --list-size)"
        )
    return chosen + rng.sample(pool, count - len(chosen))


def _capped_positives(rng: random.Random, judged: list[Judgment], threshold: int, cap: int) -> list[Judgment]:
    """A query's positives; with ``cap`` > 0 at most ``cap`` of them, highest grade (then p_relevant) first."""
    positives = [j for j in judged if j.grade >= threshold]
    if cap == 0 or len(positives) <= cap:
        return positives
    rng.shuffle(positives)  # random among equal grades; the sort below is stable
    return sorted(positives, key=lambda j: (-j.grade, -j.p_relevant))[:cap]


def assemble_training_set(
    judgments: list[Judgment],
    documents: Mapping[str, Document],
    loss: str,
    *,
    list_size: int = 4,
    threshold: int = DEFAULT_THRESHOLD,
    seed: int = 0,
    positives_per_query: int = 0,
) -> TrainingSet:
    """The rows sentence-transformers' trainer passes to the loss, with the judged-pair table."""
    from datasets import Dataset

    threshold = resolve_threshold(judgments, threshold)
    if list_size < 1 or (loss == "margin_mse" and list_size < 2):
        raise GradirError(f"--list-size {list_size} is too small for {loss}")
    if positives_per_query < 0:
        raise GradirError(f"--positives-per-query {positives_per_query} must be 0 (all) or more")
    rng = random.Random(seed)
    by_query: dict[str, list[Judgment]] = defaultdict(list)
    for judgment in judgments:
        by_query[judgment.query_id].append(judgment)
    doc_ids = list(documents)
    query_index = {qid: k for k, qid in enumerate(sorted(by_query))}
    document_index: dict[str, int] = {}

    def index_of(did: str) -> int:
        return document_index.setdefault(did, len(document_index))

    rows: dict[str, list] = defaultdict(list)
    fillers = 0
    trained_queries = set()
    names = (
        ["positive"] + [f"negative_{k}" for k in range(1, list_size)]
        if loss == "infonce"
        else [f"document_{k}" for k in range(1, list_size + 1)]
    )
    for qid in sorted(by_query):
        judged = by_query[qid]
        judged_ids = {j.doc_id for j in judged}
        for positive in _capped_positives(rng, judged, threshold, positives_per_query):
            if loss == "infonce":
                others = rng.sample(pool := [j for j in judged if j.grade < threshold], min(list_size - 1, len(pool)))
            elif loss in TEACHER_RANKED_LOSSES:
                ranked = _teacher_order([j for j in judged if j is not positive])
                others = _evenly_spaced(ranked, list_size - 1)
            else:
                others = rng.sample(pool := [j for j in judged if j.grade < positive.grade], min(list_size - 1, len(pool)))
            missing = list_size - 1 - len(others)
            if missing:
                fillers += missing
                others += [
                    Judgment(qid, positive.query_text, did, 0, 0.0, "filler", 0.0)
                    for did in _fillers(rng, doc_ids, judged_ids, missing, qid)
                ]
            listed = [positive, *others]
            trained_queries.add(qid)
            rows["query"].append(positive.query_text)
            for name, judgment in zip(names, listed):
                rows[name].append(documents[judgment.doc_id].full_text)
            labels = [] if loss == "infonce" else [label_of(j, loss) for j in listed]
            rows["label"].append(labels + [float(query_index[qid])] + [float(index_of(j.doc_id)) for j in listed])
    if not rows:
        raise GradirError(f"no judgment reaches grade {threshold}: nothing to train on (lower --threshold?)")
    if max(len(query_index), len(document_index)) >= MAX_EXACT_ID:
        raise GradirError(f"the training set names more than {MAX_EXACT_ID} queries or documents; split it into parts")
    judged = JudgedPairs.from_triples(
        (query_index[j.query_id], document_index[j.doc_id],
         (1.0 if j.grade >= threshold else 0.0) if loss == "infonce" else label_of(j, loss))
        for j in judgments if j.doc_id in document_index
    )
    return TrainingSet(Dataset.from_dict(dict(rows)), judged, len(trained_queries), fillers)
