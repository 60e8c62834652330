"""The level grader: a SyCL synthetic document is labelled with the level it was written for (level / 3)."""

from __future__ import annotations

from gradir.grading.judgments import Judgment
from gradir.synth.records import SyntheticDocument


def grade_by_level(documents: list[SyntheticDocument], top_level: int = 3) -> list[Judgment]:
    return [
        Judgment(d.query_id, d.query_text, d.doc_id, d.level, d.level / top_level, "level", float(d.level))
        for d in documents
    ]
