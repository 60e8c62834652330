"""BM25 with bm25s: sparse-matrix scoring, English stop words and Snowball stemming.

The defaults (k1 = 1.2, b = 0.75, Lucene's formula, stemming) follow the
Elasticsearch set-up of BEIR's BM25 baseline.

:func:`collection_index` builds a collection's index once and saves it in the cache
folder (``bm25/<key>``, bm25s' own format: the score matrix as NumPy arrays and the
vocabulary), keyed by the documents' ids and texts and the settings; later searches of
the same collection (validation in training, a BM25 or hybrid evaluation, mining) load
it memory-mapped instead of tokenising the collection again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import bm25s
import Stemmer

from gradir.collections.records import Document
from gradir.retrieval.run import Run

_IDS_FILE = "doc_ids.json"


class BM25Index:
    def __init__(
        self,
        doc_ids: Sequence[str],
        texts: Sequence[str],
        *,
        k1: float = 1.2,
        b: float = 0.75,
        language: str = "english",
    ):
        self.doc_ids = list(doc_ids)
        self.stemmer = Stemmer.Stemmer(language)
        self.stopwords = "en" if language == "english" else None
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        if texts:
            tokens = bm25s.tokenize(list(texts), stopwords=self.stopwords, stemmer=self.stemmer, show_progress=False)
            self.retriever.index(tokens, show_progress=False)

    def save(self, folder: Path) -> None:
        """Write the index into ``folder`` whole or not at all (built beside it, then renamed)."""
        partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        self.retriever.save(str(partial), show_progress=False)
        (partial / _IDS_FILE).write_text(json.dumps(self.doc_ids), encoding="utf-8")
        try:
            partial.rename(folder)
        except OSError:  # another process saved the same index first
            shutil.rmtree(partial, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path, language: str = "english") -> BM25Index:
        """An index written by :meth:`save`, its score matrix memory-mapped."""
        index = cls([], [], language=language)
        index.retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        index.doc_ids = json.loads((folder / _IDS_FILE).read_text(encoding="utf-8"))
        return index

    def search(self, query_ids: Sequence[str], query_texts: Sequence[str], top_k: int) -> Run:
        k = min(top_k, len(self.doc_ids))
        tokens = bm25s.tokenize(list(query_texts), stopwords=self.stopwords, stemmer=self.stemmer, show_progress=False)
        indices, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        run: Run = {}
        for qid, row_indices, row_scores in zip(query_ids, indices, scores):
            # A query with no known term scores 0 everywhere: it retrieves nothing.
            run[qid] = {self.doc_ids[i]: float(s) for i, s in zip(row_indices, row_scores) if s > 0}
        return run

    def score_documents(self, query_text: str, doc_ids: Sequence[str]) -> list[float]:
        """BM25 score of each of ``doc_ids`` for one query, whatever its rank (0: no shared term).

        A document not in the index raises KeyError. bm25s scores the whole collection for
        the query (one float per document); the positions map is built on first use.
        """
        if not hasattr(self, "_positions"):
            self._positions = {doc_id: i for i, doc_id in enumerate(self.doc_ids)}
        tokens = bm25s.tokenize([query_text], stopwords=self.stopwords, stemmer=self.stemmer,
                                return_ids=False, show_progress=False)[0]
        if not tokens:
            return [0.0] * len(doc_ids)
        scores = self.retriever.get_scores(tokens)
        return [float(scores[self._positions[d]]) for d in doc_ids]


def collection_key(documents: Mapping[str, Document], settings: str) -> str:
    """A digest of every document's id and text, in order, and of the index settings."""
    digest = hashlib.blake2b(f"bm25s {bm25s.__version__} {settings}\0".encode(), digest_size=16)
    for doc_id, document in documents.items():
        digest.update(doc_id.encode() + b"\0" + document.full_text.encode() + b"\0")
    return digest.hexdigest()


def collection_index(documents: Mapping[str, Document], cache_dir: Path | None) -> BM25Index:
    """The BM25 index of ``documents``: loaded from ``cache_dir`` when saved before, else built (and saved there)."""
    doc_ids = list(documents)
    if cache_dir is None:
        return BM25Index(doc_ids, [documents[d].full_text for d in doc_ids])
    folder = Path(cache_dir) / "bm25" / collection_key(documents, "k1=1.2 b=0.75 lucene english")
    if (folder / _IDS_FILE).is_file():
        return BM25Index.load(folder)
    index = BM25Index(doc_ids, [documents[d].full_text for d in doc_ids])
    folder.parent.mkdir(parents=True, exist_ok=True)
    index.save(folder)
    return index
