"""A validation set without human labels: held-out synthetic queries graded by the teacher.

A user tuning on an unlabelled collection cannot see a regression, so gradir holds out a
share of the training queries, grouped (by the passage a synthetic query was written
from, else by query) so that no group is on both sides, and scores a model on them:

    nDCG@10 of each held-out query's ranking of its own judged documents (the teacher's
    grades 0–3 as gains); documents the query has no judgment for are left out of its
    ranking: a condensed list (Sakai, "Alternatives to Bpref", SIGIR 2007).

Why condensed: the judged documents of a synthetic query are the candidates mined with the
*base* model (its top k, and the source passage). Searched over the corpus with the
unjudged documents read as non-relevant (trec_eval's reading), every document a tuned
model brings into its top 10 from outside the base's pool counts as a miss, relevant or
not, so the reading favours the base by construction. Measured on NFCorpus, where human
grades go far deeper than any pool (benchmarks/validation_bias.py: 8 tuned models, judging
only the base's top 10): that reading puts the models' gains over the base 4.29 nDCG@10
points too low on average and does not rank them as the test split does (Spearman ρ −0.26;
the sign right for 1 of 8; BiXSE's +0.97 on test reads −2.68); as condensed lists they
read 0.46 low, ρ 0.93 (BiXSE's +0.97 reads +1.09). Ranking only judged documents also
makes a score cheap: no corpus to encode, whatever its size.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from gradir.collections.records import Document
from gradir.evaluation.metrics import score_run
from gradir.grading.judgments import Judgment
from gradir.precision import float32_forward
from gradir.training_defaults import DEFAULT_VALIDATION_SHARE


@dataclass
class ValidationSet:
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> document id -> grade
    documents: dict[str, str]  # document id -> text: the documents judged for a held-out query
    groups: int
    file: str | None = None  # the judgments file a validation set given whole was read from; None: held out

    def describe(self) -> dict[str, int | str]:
        judged = sum(len(d) for d in self.qrels.values())
        described: dict[str, int | str] = {"queries": len(self.queries), "groups": self.groups, "judged_pairs": judged,
                                           "documents": len(self.documents)}
        return described | ({"file": self.file} if self.file else {})

    def score(self, model, batch_size: int = 32) -> float:
        """nDCG@10 of a sentence-transformers model (used as it is, in eval mode, without gradients, in float32)."""
        scores = self.per_query(model, batch_size)
        return sum(scores.values()) / len(scores) if scores else 0.0

    def per_query(self, model, batch_size: int = 32) -> dict[str, float]:
        """Each held-out query's nDCG@10 under a model: what :meth:`score` averages, and what a paired
        test of two models compares (a diverged model, with NaN or infinite embeddings, scores 0)."""
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
            return {q: 0.0 for q in self.qrels if self.qrels[q]}
        row = {d: i for i, d in enumerate(doc_ids)}
        run = {}
        for q, vector in zip(query_ids, query_vectors):
            judged = list(self.qrels[q])
            scores = doc_vectors[[row[d] for d in judged]] @ vector
            run[q] = {d: float(score) for d, score in zip(judged, scores)}
        return {q: metrics["ndcg@10"] for q, metrics in score_run(self.qrels, run)[1].items()}


def held_out_groups(groups: Iterable[str], *, share: float = DEFAULT_VALIDATION_SHARE, seed: int = 0) -> set[str]:
    """The groups held out for validation: ``share`` of them (at least 1, and never all), drawn with ``seed``.

    A pure function of the group ids, so the pipeline draws the same groups before grading
    (its mine stage retrieves their candidates deeper, ``mine.validation_top_k``) as the
    train stage does after it. Empty when ``share`` is 0 or there are fewer than 2 groups.
    """
    ordered = sorted(set(groups))
    if share <= 0 or len(ordered) < 2:
        return set()
    count = min(len(ordered) - 1, max(1, round(share * len(ordered))))
    return set(random.Random(seed).sample(ordered, count))


def hold_out(
    judgments: list[Judgment],
    documents: Mapping[str, Document],
    *,
    share: float = DEFAULT_VALIDATION_SHARE,
    groups: Mapping[str, str] | None = None,
    threshold: int = 1,
    seed: int = 0,
) -> tuple[list[Judgment], ValidationSet | None]:
    """Split off ``share`` of the query groups; return the training judgments and the validation set.

    With ``groups`` (a query id -> group map, e.g. each synthetic query's source passage; a
    judged query not in it is a group of its own), the held-out groups are
    :func:`held_out_groups` of all the groups, whether judged or not, so that they can be
    chosen before grading; a held-out query without a judged document of grade ``threshold``
    or more cannot score and is left out of the validation set (and out of training).
    Without it, each judged query is its own group and the draw is among the queries that
    can score. None when nothing would be left to train on or to validate with.
    """
    by_query: dict[str, list[Judgment]] = defaultdict(list)
    for judgment in judgments:
        by_query[judgment.query_id].append(judgment)
    if groups is not None:
        group_of = {qid: groups.get(qid, f"query:{qid}") for qid in by_query}  # a query not in the map: its own group
        held_groups = held_out_groups({*groups.values(), *group_of.values()}, share=share, seed=seed)
        held = {qid for qid, group in group_of.items() if group in held_groups}
        scoring = {qid for qid in held if any(j.grade >= threshold for j in by_query[qid])}
        if not scoring or held == set(by_query):
            return judgments, None
        training = [j for j in judgments if j.query_id not in held]
        validation = [j for q in sorted(scoring) for j in by_query[q]]
        return training, _validation_set(validation, documents, len({group_of[q] for q in scoring}))
    eligible = sorted(q for q, judged in by_query.items() if any(j.grade >= threshold for j in judged))
    held = held_out_groups(eligible, share=share, seed=seed)
    if not held:
        return judgments, None
    training = [j for j in judgments if j.query_id not in held]
    return training, _validation_set([j for q in sorted(held) for j in by_query[q]], documents, len(held))


def validation_set(judgments: list[Judgment], documents: Mapping[str, Document], *, threshold: int = 1) -> ValidationSet | None:
    """A validation set given whole (e.g. a few human-labelled queries, or judgments built as
    the held-out ones are): each query with a judged document of grade ``threshold`` or more
    is one group; the others cannot score and are left out. None when no query qualifies."""
    scoring = {j.query_id for j in judgments if j.grade >= threshold}
    if not scoring:
        return None
    return _validation_set([j for j in judgments if j.query_id in scoring], documents, len(scoring))


def _validation_set(judgments: list[Judgment], documents: Mapping[str, Document], groups: int) -> ValidationSet:
    qrels: dict[str, dict[str, int]] = {}
    queries: dict[str, str] = {}
    for j in sorted(judgments, key=lambda j: j.query_id):
        queries.setdefault(j.query_id, j.query_text)
        judged_for_query = qrels.setdefault(j.query_id, {})
        if j.doc_id in documents:
            judged_for_query[j.doc_id] = max(j.grade, 0)
    judged = sorted({did for docs in qrels.values() for did in docs})
    return ValidationSet(queries, qrels, {did: documents[did].full_text for did in judged}, groups)
