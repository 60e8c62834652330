"""A validation set without human labels: held-out synthetic queries graded by the teacher.

A user tuning on an unlabelled collection cannot see a regression, so gradir holds out a
share of the training queries, grouped (by the passage a synthetic query was written
from, else by query) so that no group is on both sides, and scores a model on them:

    nDCG@10 of retrieval over the validation corpus, the held-out queries' judged
    documents as graded qrels (the teacher's grades 0–3 as gains).

The validation corpus is the whole corpus, or, above ``max_documents``: every document
judged for a held-out query, BM25's top 10 of each held-out query (hard distractors; see
:func:`lexical_neighbours`), and a seeded sample of the others up to ``max_documents``.
Scoring a model then stays cheap next to training. Why distractors: among random
documents alone, a held-out query's source passage sits at rank 1 for the base and
every tuned model alike (a run of 80 SciFact passages scored base, both epochs and every
interpolation at exactly 0.8603), so the selection could never tell them apart. Why
BM25's and not a compared model's: the distractors must not come from one of the models
being compared. Pooled from the base model's own top 10, the set held exactly the
documents that fool the base and only some of those that fool a tuned model, so any
change of model looked better — a model wrecked by a learning rate of 0.3 scored 0.128
against the base's 0.091. BM25 is independent of every model compared (the pooling
argument of TREC: judge what an outside system retrieves). Its use is to compare models,
not to report.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradir.collections.records import Document, Query
from gradir.evaluation.metrics import score_run
from gradir.grading.judgments import Judgment
from gradir.precision import float32_forward
from gradir.retrieval.dense import DenseIndex
from gradir.retrieval.run import top_ranked
from gradir.training_defaults import DEFAULT_VALIDATION_DOCUMENTS, DEFAULT_VALIDATION_SHARE

NEAREST_PER_QUERY = 10
Distractors = Callable[[Mapping[str, str]], list[str]]


@dataclass
class ValidationSet:
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> document id -> grade
    documents: dict[str, str]  # document id -> text searched
    groups: int

    def describe(self) -> dict[str, int]:
        judged = sum(len(d) for d in self.qrels.values())
        return {"queries": len(self.queries), "groups": self.groups, "judged_pairs": judged,
                "documents": len(self.documents)}

    def score(self, model, batch_size: int = 32) -> float:
        """nDCG@10 of a sentence-transformers model (used as it is, in eval mode, without gradients, in float32)."""
        import torch

        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), float32_forward(model):
                doc_ids = list(self.documents)
                doc_vectors = model.encode([self.documents[d] for d in doc_ids], batch_size=batch_size,
                                           normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
                query_ids = list(self.queries)
                query_vectors = model.encode([self.queries[q] for q in query_ids], batch_size=batch_size,
                                             normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        finally:
            model.train(was_training)
        if not (np.isfinite(doc_vectors).all() and np.isfinite(query_vectors).all()):
            return 0.0  # a diverged model (NaN or infinite embeddings) retrieves nothing
        run = DenseIndex(doc_ids, np.asarray(doc_vectors)).search(query_ids, np.asarray(query_vectors), 10)
        return score_run(self.qrels, run)[0]["ndcg@10"]


def lexical_neighbours(
    documents: Mapping[str, Document], per_query: int = NEAREST_PER_QUERY, cache_dir: Path | None = None,
) -> Distractors:
    """A function of the held-out queries (id -> text): BM25's top ``per_query`` documents of each, best ranks first.

    The BM25 index is built (or loaded from ``cache_dir``, default ``$GRADIR_CACHE_DIR``,
    where it is saved for the next run on the same documents) when the function is called: :func:`hold_out` calls it once,
    and only when the corpus is above ``max_documents``.
    """
    from gradir.retrieval.search import search

    def find(queries: Mapping[str, str]) -> list[str]:
        run = search(documents, {q: Query(q, text) for q, text in queries.items()}, "bm25", top_k=per_query,
                     cache_dir=cache_dir)
        ranked = [[did for did, _ in top_ranked(run.get(q, {}))] for q in queries]
        by_rank = [r[rank] for rank in range(per_query) for r in ranked if rank < len(r)]
        return list(dict.fromkeys(by_rank))

    return find


def hold_out(
    judgments: list[Judgment],
    documents: Mapping[str, Document],
    *,
    share: float = DEFAULT_VALIDATION_SHARE,
    groups: Mapping[str, str] | None = None,
    threshold: int = 1,
    seed: int = 0,
    max_documents: int = DEFAULT_VALIDATION_DOCUMENTS,
    distractors: Distractors | None = None,
) -> tuple[list[Judgment], ValidationSet | None]:
    """Split off ``share`` of the query groups; return the training judgments and the validation set.

    ``groups`` maps a query id to its group (a synthetic query's source passage); queries
    without one form a group of their own. Only queries with a judged document of grade
    ``threshold`` or more can be held out (the others cannot score). None when fewer than
    two groups qualify (nothing would be left to train on or to validate with).
    ``distractors`` (e.g. :func:`lexical_neighbours`) names the documents searched beside
    the judged ones, before the random sample, when the corpus is above ``max_documents``.
    """
    by_query: dict[str, list[Judgment]] = defaultdict(list)
    for judgment in judgments:
        by_query[judgment.query_id].append(judgment)
    group_of = {qid: (groups or {}).get(qid, f"query:{qid}") for qid in by_query}
    members: dict[str, list[str]] = defaultdict(list)
    for qid in sorted(by_query):
        members[group_of[qid]].append(qid)
    eligible = sorted(
        g for g, qids in members.items() if any(j.grade >= threshold for q in qids for j in by_query[q])
    )
    if share <= 0 or len(eligible) < 2:
        return judgments, None
    count = min(len(eligible) - 1, max(1, round(share * len(eligible))))
    held_groups = set(random.Random(seed).sample(eligible, count))
    held = {qid for g in held_groups for qid in members[g]}
    training = [j for j in judgments if j.query_id not in held]
    qrels = {qid: {j.doc_id: max(j.grade, 0) for j in by_query[qid]} for qid in sorted(held)}
    queries = {qid: by_query[qid][0].query_text for qid in sorted(held)}
    judged = sorted({did for docs in qrels.values() for did in docs if did in documents})
    chosen = set(judged)
    near: list[str] = []
    if len(documents) > max_documents and distractors is not None:
        near = [did for did in distractors(queries) if did in documents and did not in chosen]
        chosen.update(near)
    others = [did for did in documents if did not in chosen]
    if len(chosen) + len(others) > max_documents:
        others = random.Random(seed).sample(others, max(0, max_documents - len(chosen)))
    searched = {did: documents[did].full_text for did in [*judged, *near, *others]}
    return training, ValidationSet(queries, qrels, searched, len(held_groups))
