"""Graded judgments: the supervision every graded loss trains on.

One row a (query, document) pair: ``query_id``, ``query_text``, ``doc_id``, ``grade``
(integer), ``p_relevant`` (the soft label in [0, 1]), ``grader``, ``score`` (the
grader's raw score) and ``grade_probabilities`` (P(grade = g) for g = 0..3 when the
grader gives them, else empty). Human qrels, LLM grades and cross-encoder scores all become this
table, so real and synthetic labels train through one path.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from gradir.collections.loader import Collection
from gradir.collections.problems import ProblemLog
from gradir.collections.rows import iter_rows, position_unit
from gradir.retrieval.encoding import Encoder
from gradir.errors import GradirError
from gradir.retrieval.search import search
from gradir.tables import write_table

COLUMNS = ("query_id", "query_text", "doc_id", "grade", "p_relevant", "grader", "score", "grade_probabilities")


@dataclass(frozen=True, slots=True)
class Judgment:
    query_id: str
    query_text: str
    doc_id: str
    grade: int
    p_relevant: float
    grader: str
    score: float
    grade_probabilities: tuple[float, ...] = ()


def write_judgments(path: Path | str, judgments: list[Judgment]) -> None:
    write_table(path, [asdict(j) for j in judgments])


def read_judgments(path: Path | str, documents: set[str] | None = None, log: ProblemLog | None = None) -> list[Judgment]:
    """Read and validate a judgments table; with ``documents``, unknown document ids are errors."""
    path = Path(path)
    log = ProblemLog() if log is None else log
    unit = position_unit(path)
    judgments: list[Judgment] = []
    seen: dict[tuple[str, str], int] = {}
    required = ("query_id", "query_text", "doc_id", "grade", "p_relevant")
    for pos, row in iter_rows(path, log, required=required):
        missing = [c for c in required if row.get(c) is None]
        if missing:
            log.add(path, pos, f"missing field(s) {', '.join(missing)}", "missing field", unit)
            continue
        try:
            grade = int(row["grade"])
            if float(row["grade"]) != grade:
                raise ValueError
        except (TypeError, ValueError):
            log.add(path, pos, f"grade '{row['grade']}' is not an integer", "non-integer grade", unit)
            continue
        try:
            p = float(row["p_relevant"])
        except (TypeError, ValueError):
            p = math.nan
        if not 0.0 <= p <= 1.0:
            log.add(path, pos, f"p_relevant '{row['p_relevant']}' is not a number in [0, 1]", "bad label", unit)
            continue
        qid, did = str(row["query_id"]), str(row["doc_id"])
        if documents is not None and did not in documents:
            log.add(path, pos, f"unknown document id '{did}' (not in the corpus)", "unknown document", unit)
            continue
        if (qid, did) in seen:
            log.add(path, pos, f"duplicate judgment for query '{qid}' and document '{did}' ({unit} {seen[qid, did]})", "duplicate id", unit)
            continue
        seen[qid, did] = pos
        text = str(row["query_text"])
        if not text.strip():
            log.add(path, pos, f"empty query_text for query '{qid}'", "empty text", unit)
            continue
        score = row.get("score")
        probabilities = tuple(float(v) for v in (row.get("grade_probabilities") or ()))
        judgments.append(
            Judgment(qid, text, did, grade, p, str(row.get("grader") or "unknown"), float(p if score is None else score), probabilities)
        )
    log.check()
    if not judgments:
        raise log.fatal(path, None, "no judgments found")
    return judgments


def judgments_from_qrels(
    collection: Collection,
    split: str = "train",
    *,
    max_queries: int | None = None,
    negatives: int = 0,
    negatives_from: tuple[int, int] = (10, 100),
    retriever: str = "dense",
    encoder: Encoder | None = None,
    seed: int = 0,
    top_grade: int | None = None,
) -> list[Judgment]:
    """Human graded qrels as judgments; p_relevant = grade / ``top_grade``.

    ``top_grade`` None: the split's highest grade. Give the collection's scale where one
    split uses only part of it (NFCorpus' train qrels hold grade 1 of its 0–2 scale).
    With ``negatives`` > 0, that many unjudged documents per query are sampled from the
    ranks ``negatives_from`` of the base retriever and added with grade 0 (mined,
    ungraded negatives: unjudged is taken as not relevant).
    """
    qrels = collection.qrels(split)
    queries = collection.split_queries(split)
    query_ids = list(queries)
    rng = random.Random(seed)
    if max_queries is not None and max_queries < len(query_ids):
        position = {qid: i for i, qid in enumerate(query_ids)}  # the file's order, looked up in O(1)
        query_ids = sorted(rng.sample(query_ids, max_queries), key=position.__getitem__)
    highest = max((g for docs in qrels.values() for g in docs.values()), default=1)
    if top_grade is None:
        top_grade = highest
    elif highest > top_grade:
        raise GradirError(f"{collection.root}: split '{split}' has grade {highest}, above the top grade {top_grade} given")
    if top_grade <= 0:
        raise GradirError(f"{collection.root}: split '{split}' has no positive grade")
    judgments = [
        Judgment(qid, queries[qid].text, did, grade, max(grade, 0) / top_grade, "qrels", float(grade))
        for qid in query_ids
        for did, grade in qrels[qid].items()
    ]
    if negatives > 0:
        low, high = negatives_from
        selected = {qid: queries[qid] for qid in query_ids}
        run = search(collection.documents, selected, retriever, encoder=encoder, top_k=high)
        for qid in query_ids:
            ranked = [did for did in list(run.get(qid, {}))[low:high] if did not in qrels[qid]]
            for did in rng.sample(ranked, min(negatives, len(ranked))):
                judgments.append(Judgment(qid, queries[qid].text, did, 0, 0.0, "mined-negative", 0.0))
    return judgments
