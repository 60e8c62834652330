"""Graders: each turns (query, document) pairs into the same judgments table."""

from gradir.grading.agreement import Agreement, agreement
from gradir.grading.cross_encoder import grade_with_cross_encoder, normalise_scores
from gradir.grading.level import grade_by_level
from gradir.grading.llm import GRADES, grade_with_llm

__all__ = [
    "GRADES",
    "Agreement",
    "agreement",
    "grade_by_level",
    "grade_with_cross_encoder",
    "grade_with_llm",
    "normalise_scores",
]
