"""The report's figures read for the user, in words: what a run's numbers mean.

In: the data :func:`gradir.pipeline.report.collect` reads from a run directory. Out: a
few plain sentences for the top of the report, each one a figure and what follows from
it, so that a user who reads nothing else still learns

- whether the change in nDCG@10 is significant (paired randomisation test, α = 0.05),
  and whether selection handed back the base model (and whether only because its validation
  set could not tell the models apart);
- whether the grader told the candidates apart: one grade holding at least
  ``CONCENTRATED_SHARE`` of the mined candidates means the labels carry little
  information (the histogram alone does not say so);
- how the grader did against the collection's human judgments, when it was checked;
- whether the training-loss curve can be read (one logged point is not a curve).
"""

from __future__ import annotations

from typing import Any

SIGNIFICANCE = 0.05
CONCENTRATED_SHARE = 0.8
MIN_CANDIDATES = 10  # fewer mined candidates than this: no verdict on their grades


def findings(data: dict[str, Any]) -> list[str]:
    """Sentences for the top of the report, most important first."""
    from gradir.training.selection import (  # imports the training stack: only when read
        rejected,
        rejected_sentence,
        undecided,
        undecided_sentence,
    )

    sentences = [_gain(data["comparison"])]
    selection = data["training"].get("selection") or {}
    if selection and undecided(selection):
        sentences.append(f"Selection could not choose: {undecided_sentence(selection)}")
    elif selection and rejected(selection):
        sentences.append(f"Selection kept the base model: {rejected_sentence(selection)}.")
    elif selection.get("output") == "base":
        sentences.append("Selection kept the base model: no tuned or interpolated model beat it on the held-out "
                         "synthetic queries, so the output is the base model, unchanged.")
    if grades := _concentration(data["histograms"].get("mined candidates", {})):
        sentences.append(grades)
    if data.get("grader_check"):
        sentences.append(_grader_check(data["grader_check"]))
    if len(data["training_log"]) < 2:
        sentences.append(f"The training loss was logged {len(data['training_log'])} time(s): there is no curve to read "
                         "(a run this short shows little of how training went).")
    return sentences


def _gain(comparison: dict[str, Any]) -> str:
    base, tuned = comparison["base"]["ndcg@10"], comparison["tuned"]["ndcg@10"]
    test = comparison["paired_tests"]["ndcg@10"]
    p = test["p_randomization"]
    change = f"nDCG@10 went from {base:.4f} to {tuned:.4f} ({tuned - base:+.4f}; {test['wins']} queries better, " \
             f"{test['losses']} worse; p = {p:.3f}, paired randomisation test)"
    if p >= SIGNIFICANCE or tuned == base:
        return f"{change}: **not significant** at {SIGNIFICANCE}, the difference may be noise."
    direction = "gain" if tuned > base else "loss"
    return f"{change}: a significant {direction} at {SIGNIFICANCE}."


def _concentration(histogram: dict[str, int]) -> str | None:
    total = sum(histogram.values())
    if total < MIN_CANDIDATES:
        return None
    grade, count = max(histogram.items(), key=lambda item: item[1])
    if count / total < CONCENTRATED_SHARE:
        return None
    return (f"The grader put {count} of {total} mined candidates ({count / total:.0%}) in grade {grade}: labels that "
            "are nearly all the same carry little information for the graded losses. A grader with more signal "
            "(`grade.grader = \"likelihood\"`, another `grade.llm`) or more candidates per query may help.")


def _grader_check(check: dict[str, Any]) -> str:
    rerank = check["rerank_test"]
    sentence = (f"Checked against {check['queries']} human-judged queries, the grader's order of the base top "
                f"{check['top_k']} scored nDCG@10 {check['ndcg@10_reranked']:.4f} against {check['ndcg@10_base']:.4f} "
                f"for the retriever's order ({rerank['delta']:+.4f}, p = {rerank['p_randomization']:.3f}): "
                f"{_verdict(rerank)}.")
    if "teacher_test" in check:
        teacher = check["teacher_test"]
        sentence += (f" Ordered by its training labels (p_relevant, after any fusion with the retriever and BM25 scores), "
                     f"{check['ndcg@10_teacher']:.4f} ({teacher['delta']:+.4f}, p = {teacher['p_randomization']:.3f}): "
                     f"{_verdict(teacher)}.")
    return sentence


def _verdict(test: dict[str, Any]) -> str:
    return "significantly better" if test["delta"] > 0 and test["p_randomization"] < SIGNIFICANCE else \
        "significantly worse" if test["delta"] < 0 and test["p_randomization"] < SIGNIFICANCE else \
        "not significantly different"
