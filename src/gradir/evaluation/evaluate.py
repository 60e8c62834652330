"""Evaluate a retriever on a collection's judged split, and save what a researcher needs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from gradir.atomic import atomic_write, write_text_atomic
from gradir.collections.loader import Collection
from gradir.retrieval.encoding import Encoder
from gradir.evaluation.metrics import METRICS, score_run
from gradir.evaluation.runfile import write_run
from gradir.retrieval.run import Run
from gradir.retrieval.search import search


@dataclass
class EvalResult:
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    run: Run
    collection: str
    split: str
    retriever: str
    model: str | None
    queries: int
    documents: int
    seconds: float
    encoded_texts: int = 0
    cached_texts: int = 0
    outputs: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        """The metrics (keys ``ndcg@10``, ``recall@100``, ``mrr@10``, ``map@100``) and the run's facts."""
        return {
            **{name: round(self.metrics[name], 6) for name in METRICS},
            "collection": self.collection,
            "split": self.split,
            "retriever": self.retriever,
            "model": self.model,
            "queries": self.queries,
            "documents": self.documents,
            "encoded_texts": self.encoded_texts,
            "cached_texts": self.cached_texts,
            "seconds": round(self.seconds, 3),
            "outputs": self.outputs,
        }

    def save(self, out_dir: Path | str) -> dict[str, str]:
        """Write ``metrics.json``, ``per_query.tsv`` and ``run.trec`` atomically into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "metrics": out / "metrics.json",
            "per_query": out / "per_query.tsv",
            "run": out / "run.trec",
        }
        write_run(paths["run"], self.run, tag=f"gradir-{self.retriever}")
        with atomic_write(paths["per_query"]) as handle:
            handle.write("query_id\t" + "\t".join(METRICS) + "\n")
            for qid, row in self.per_query.items():
                handle.write(qid + "\t" + "\t".join(f"{row[m]:.6f}" for m in METRICS) + "\n")
        self.outputs = {name: str(path) for name, path in paths.items()}
        write_text_atomic(paths["metrics"], json.dumps(self.summary(), indent=2) + "\n")
        return self.outputs


def evaluate(
    collection: Collection,
    *,
    split: str = "test",
    retriever: str = "dense",
    encoder: Encoder | None = None,
    top_k: int = 100,
) -> EvalResult:
    """Retrieve for the split's judged queries and score the run against its qrels."""
    start = time.perf_counter()
    qrels = collection.qrels(split)
    queries = collection.split_queries(split)
    if retriever != "bm25" and encoder is None:
        encoder = Encoder()
    run = search(collection.documents, queries, retriever, encoder=encoder, top_k=top_k)
    metrics, per_query = score_run(qrels, run)
    uses_encoder = encoder is not None and retriever != "bm25"
    return EvalResult(
        metrics=metrics,
        per_query=per_query,
        run=run,
        collection=str(collection.root),
        split=split,
        retriever=retriever,
        model=str(encoder.model_path) if uses_encoder else None,
        queries=len(queries),
        documents=len(collection.documents),
        seconds=time.perf_counter() - start,
        encoded_texts=encoder.encoded_count if uses_encoder else 0,
        cached_texts=encoder.cache_hits if uses_encoder else 0,
    )
