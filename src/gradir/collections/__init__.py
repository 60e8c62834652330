"""Reading and validating document collections, queries and graded judgments."""

from gradir.collections.loader import Collection, load_collection, load_corpus, load_queries
from gradir.collections.problems import ProblemLog
from gradir.collections.qrels import Qrels, read_qrels
from gradir.collections.records import Document, Query

__all__ = [
    "Collection",
    "Document",
    "ProblemLog",
    "Qrels",
    "Query",
    "load_collection",
    "load_corpus",
    "load_queries",
    "read_qrels",
]
