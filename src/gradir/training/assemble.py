"""From judgments to the training set each loss needs.

Every loss sees the same queries and documents. One row per judged document whose
grade reaches ``threshold`` (a positive): that document first, then ``list_size - 1``
other documents of the same query with a lower grade, sampled with the seed; lists
short of documents are filled with random corpus documents the query has no judgment
for (taken as grade 0). The labels per loss:

- ``infonce``: none; the other documents are drawn only from grades below the threshold
  (the judgments binarised), and the dataset has ``query, positive, negative_*``.
- ``bixse``, ``listwise_kl``, ``margin_mse``: ``p_relevant`` of each document.
- ``wasserstein``: the integer grade of each document.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping

from gradir.collections.records import Document
from gradir.errors import GradirError
from gradir.judgments import Judgment

GRADE_LABEL_LOSSES = {"wasserstein"}


def assemble_training_set(
    judgments: list[Judgment],
    documents: Mapping[str, Document],
    loss: str,
    *,
    list_size: int = 4,
    threshold: int = 1,
    seed: int = 0,
):
    """A ``datasets.Dataset`` with the columns sentence-transformers' trainer passes to the loss."""
    from datasets import Dataset

    if list_size < 1 or (loss == "margin_mse" and list_size < 2):
        raise GradirError(f"--list-size {list_size} is too small for {loss}")
    rng = random.Random(seed)
    by_query: dict[str, list[Judgment]] = defaultdict(list)
    for judgment in judgments:
        by_query[judgment.query_id].append(judgment)
    doc_ids = list(documents)
    rows: dict[str, list] = defaultdict(list)
    for qid in sorted(by_query):
        judged = by_query[qid]
        judged_ids = {j.doc_id for j in judged}
        for positive in (j for j in judged if j.grade >= threshold):
            if loss == "infonce":
                pool = [j for j in judged if j.grade < threshold]
            else:
                pool = [j for j in judged if j.grade < positive.grade]
            others = rng.sample(pool, min(list_size - 1, len(pool)))
            while len(others) < list_size - 1:
                did = rng.choice(doc_ids)
                if did not in judged_ids and did not in {o.doc_id for o in others}:
                    others.append(Judgment(qid, positive.query_text, did, 0, 0.0, "random", 0.0))
            listed = [positive, *others]
            rows["query"].append(positive.query_text)
            names = (
                ["positive"] + [f"negative_{k}" for k in range(1, list_size)]
                if loss == "infonce"
                else [f"document_{k}" for k in range(1, list_size + 1)]
            )
            for name, judgment in zip(names, listed):
                rows[name].append(documents[judgment.doc_id].full_text)
            if loss != "infonce":
                rows["label"].append(
                    [float(j.grade) if loss in GRADE_LABEL_LOSSES else j.p_relevant for j in listed]
                )
    if not rows:
        raise GradirError(f"no judgment reaches grade {threshold}: nothing to train on (lower --threshold?)")
    return Dataset.from_dict(dict(rows))
