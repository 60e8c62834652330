"""How well a grader agrees with human grades: Spearman's ρ, Cohen's weighted κ, a confusion table.

Spearman's ρ is between the grader's expected grade (or score) and the human grade
(``scipy.stats.spearmanr``); κ uses quadratic weights on the hard grades
(``sklearn.metrics.cohen_kappa_score``) after the grader's 0–3 scale is mapped onto the
human one by rounding g · (human top / 3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Agreement:
    pairs: int
    spearman: float
    weighted_kappa: float
    confusion: list[list[int]]  # rows: human grade 0..H, columns: grader grade mapped to 0..H
    human_grades: list[int]

    def as_dict(self) -> dict:
        return asdict(self)


def agreement(human: list[int], expected: list[float], hard: list[int], grader_top: int = 3) -> Agreement:
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    human_top = max(max(human), 1)
    mapped = [int(round(g * human_top / grader_top)) for g in hard]
    labels = list(range(human_top + 1))
    rho = spearmanr(expected, human).statistic if len(set(human)) > 1 and len(set(expected)) > 1 else float("nan")
    kappa = cohen_kappa_score(human, mapped, labels=labels, weights="quadratic")
    table = confusion_matrix(human, mapped, labels=labels).tolist()
    return Agreement(len(human), float(rho), float(np.nan_to_num(kappa, nan=0.0)), table, labels)
