"""The query-likelihood grader: how likely the LLM finds the query, given the passage.

UPR (Sachan et al. 2022, "Improving Passage Retrieval with Zero-Shot Question
Generation") and ART (Sachan et al. 2023, "Questions Are All You Need to Train a Dense
Passage Retriever") score a passage d for a query q by the mean log-probability of the
query's tokens under a language model prompted with the passage:

    score(q, d) = (1 / |q|) · Σ_t log P_LM(q_t | prompt(d), q_<t)

The prompt is ``prompts/grading/likelihood.txt`` (``{passage}`` then ``{query}`` last);
the passage is cut to ``max_passage_tokens`` tokens. Only the query's positions are
read, and a passage is decoded once for all the queries it is scored for.

Scores become labels per query, over the query's graded candidates (one mapping for
every loss; the raw score stays in the judgments table's ``score`` column):

    p_relevant(q, d) = exp((score(q, d) − max_d' score(q, d')) / T)
    grade = 3 if p ≥ 0.75, 2 if p ≥ 0.5, 1 if p ≥ 0.25, else 0

The best candidate of each query gets p = 1 (grade 3): a query was written from a
passage, so its list holds at least one relevant document, and a language model's
likelihoods compare documents for one query far better than across queries (their
scale moves with the query's length and wording). ``T`` (``temperature``, in nats per
token) says how far below the best a candidate may score and still count as relevant;
see benchmarks/RESULTS.md for how it was chosen.

Fused with the retrievers' scores, the score that labels are made from is, per query, a
weighted sum of z-scores over the query's candidates:

    fused(q, d) = (1 − w_r − w_b) · z_q(score(q, d)) + w_r · z_q(retriever(q, d)) + w_b · z_q(bm25(q, d))

with z_q(x) = (x − mean_q x) / std_q x, ``retriever`` the mining retriever's score
(``retriever_weight`` w_r) and ``bm25`` the candidate's BM25 score for the query
(``bm25_weight`` w_b). A candidate a signal never scored (a written document) counts as
the query's mean for that signal (z = 0); a query none of whose candidates a signal
scored gives that signal's weight to the likelihood. ``T`` is then in standard
deviations. The three signals err on different documents: reordering the base
retriever's top 10 of every judged SciFact test query by the likelihood alone gained
+1.4 nDCG@10, fused with the dense score +3.3, and with the dense and BM25 scores at
0.3/0.3 (weights chosen on SciFact train, the same on NFCorpus dev) +5.2
(benchmarks/RESULTS.md, "Teachers fused", 2026-12-02), as ART's and rank fusion's
experience leads one to expect; dense and BM25 fused without the likelihood gave +4.75.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from gradir.llm import LLMClient
from gradir.synth.prompts import prompt_file
from gradir.synth.queries import truncate_passage

DEFAULT_TEMPERATURE = 0.5
DEFAULT_MAX_PASSAGE_TOKENS = 128  # measured on whole test splits (benchmarks/RESULTS.md); twice as fast as 256
GRADE_CUTS = (0.25, 0.5, 0.75)  # p at or above the k-th cut: grade k + 1


def likelihood_prompt(passage: str, template: str | None = None) -> str:
    """The prompt's prefix for a passage: everything before ``{query}``."""
    template = template if template is not None else prompt_file("grading", "likelihood.txt")
    head, marker, _ = template.partition("{query}")
    if not marker:
        raise ValueError("a likelihood prompt must contain {query}")
    return head.replace("{passage}", passage)


def query_likelihoods(
    pairs: Sequence[tuple[str, str]],
    client: LLMClient,
    *,
    max_passage_tokens: int = DEFAULT_MAX_PASSAGE_TOKENS,
    template: str | None = None,
) -> list[tuple[float | None, str | None]]:
    """Per (query, passage) pair: the mean log-probability of the query's tokens, or why it failed."""
    passages = {d: truncate_passage(d, client, max_passage_tokens)[0] for d in dict.fromkeys(d for _, d in pairs)}
    prefixes = [likelihood_prompt(passages[d], template) for _, d in pairs]
    answers = client.continuation_logprobs(prefixes, [q.strip() for q, _ in pairs], what="scoring query likelihood")
    return [(a.mean, None) if a.ok and a.logprobs else (None, a.error or "no log-probabilities") for a in answers]


def fused_scores(
    query_ids: Sequence[str],
    scores: Sequence[float],
    weighted: Sequence[tuple[float, Sequence[float | None]]],
) -> list[float]:
    """Per pair: (1 − Σ w)·z(score) + Σ w·z(signal), z over the pair's query (see the module docstring).

    ``weighted`` holds (w, one value per pair or None where the signal did not score the pair).
    """
    weights = [w for w, _ in weighted]
    if any(not 0.0 <= w <= 1.0 for w in weights) or sum(weights) > 1.0 + 1e-9:
        raise ValueError(f"fusion weights must lie in [0, 1] and sum to at most 1, got {weights}")
    by_query: dict[str, list[int]] = defaultdict(list)
    for i, qid in enumerate(query_ids):
        by_query[qid].append(i)
    fused = [0.0] * len(query_ids)
    for rows in by_query.values():
        own = _z([scores[i] for i in rows])
        others = []
        for weight, values in weighted:
            known = [i for i in rows if values[i] is not None]
            if weight > 0 and known:
                others.append((weight, dict(zip(known, _z([float(values[i]) for i in known])))))
        own_weight = 1.0 - sum(w for w, _ in others)
        for i, z_score in zip(rows, own):
            fused[i] = own_weight * z_score + sum(w * z.get(i, 0.0) for w, z in others)
    return fused


def _z(values: Sequence[float]) -> list[float]:
    """Standard scores over ``values`` (all 0 when they do not vary)."""
    if not values:
        return []
    mean = sum(values) / len(values)
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / spread if spread > 0 else 0.0 for v in values]


def labels_from_scores(
    query_ids: Sequence[str], scores: Sequence[float], temperature: float = DEFAULT_TEMPERATURE
) -> list[tuple[float, int]]:
    """(p_relevant, grade) per pair: each score against its query's best, as in the module docstring."""
    best: dict[str, float] = defaultdict(lambda: -math.inf)
    for qid, score in zip(query_ids, scores):
        best[qid] = max(best[qid], score)
    labels = []
    for qid, score in zip(query_ids, scores):
        p = math.exp((score - best[qid]) / temperature)
        labels.append((p, sum(p >= cut for cut in GRADE_CUTS)))
    return labels
