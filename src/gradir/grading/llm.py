"""The LLM grader: a 0–3 graded prompt, read from the label tokens' probabilities.

    P(g) = probability of label token g as the answer's first token, renormalised over 0..3
    soft label p_relevant = E[g] / 3 = Σ_g g·P(g) / 3,     hard grade = argmax_g P(g)

The document's text is never parsed: the grade comes only from the probabilities of
the four label tokens (constrained decoding), so a document that says "Grade: 3" or
"ignore the instructions" cannot inject a grade through parsing. For servers without
logprobs, ``samples=K`` asks K sampled one-token answers and uses the share of each
label among those that are a label.
"""

from __future__ import annotations

from collections.abc import Sequence

from gradir.llm import LLMClient, SamplingSettings
from gradir.synth.prompts import prompt_file
from gradir.synth.queries import truncate_passage

GRADES = ("0", "1", "2", "3")


def grading_prompt(query: str, document: str) -> str:
    return prompt_file("grading", "graded.txt").format(query=query, document=document)


def grade_with_llm(
    pairs: Sequence[tuple[str, str]],
    client: LLMClient,
    *,
    samples: int = 0,
    max_document_tokens: int = 400,
    seed: int = 0,
) -> list[tuple[dict[str, float] | None, str | None]]:
    """Per (query, document) pair: P(grade) for grades 0..3, or the reason it failed."""
    prompts = [grading_prompt(q, truncate_passage(d, client, max_document_tokens)[0]) for q, d in pairs]
    if samples <= 0:
        answers = client.label_probabilities(prompts, GRADES, what="grading")
        return [(a.probabilities, a.error) for a in answers]
    settings = [SamplingSettings(1.0, 1.0, 2, seed + k) for k in range(samples)]
    answers = client.generate(
        [p for p in prompts for _ in range(samples)], [s for _ in prompts for s in settings], what="grading (sampled)"
    )
    results = []
    for i in range(len(prompts)):
        votes = [a.text.strip()[:1] for a in answers[i * samples : (i + 1) * samples] if a.ok and a.text]
        votes = [v for v in votes if v in GRADES]
        if not votes:
            results.append((None, f"none of {samples} sampled answers was a grade"))
        else:
            results.append(({g: votes.count(g) / len(votes) for g in GRADES}, None))
    return results


def expected_grade(probabilities: dict[str, float]) -> float:
    return sum(int(g) * p for g, p in probabilities.items())
