"""BEIR-style evaluation with trec_eval's measures (through pytrec_eval)."""

from gradir.evaluation.compare import PairedComparison, compare_per_query
from gradir.evaluation.evaluate import EvalResult, evaluate
from gradir.evaluation.metrics import METRICS, score_run
from gradir.evaluation.runfile import read_run, write_run

__all__ = [
    "METRICS",
    "EvalResult",
    "PairedComparison",
    "compare_per_query",
    "evaluate",
    "read_run",
    "score_run",
    "write_run",
]
