"""Graders: (query, document) pairs in, graded judgments out.

Every grader writes the same judgments table (:mod:`~gradir.grading.judgments`), which
the training stage reads; :mod:`~gradir.grading.stage` is the stage both ``gradir run``
and ``gradir grade`` call.
"""

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
