"""BM25 with bm25s: sparse-matrix scoring, English stop words and Snowball stemming.

The defaults (k1 = 1.2, b = 0.75, Lucene's formula, stemming) follow the
Elasticsearch set-up of BEIR's BM25 baseline.

The index is built by :func:`streamed_scores` in chunks of documents: bm25s' own
tokeniser per chunk, and per document only its distinct terms and their counts as
NumPy arrays, so memory grows with the index's non-zero entries rather than with one
Python list of tokens per document (bm25s' ``tokenize`` + ``index`` hold every token
list at once). For a million passages: 1.6 GiB above the loaded collection against
bm25s' 4.0 GiB, at the same speed (benchmarks/RESULTS.md, 2026-12-04). The score matrix
and vocabulary it returns are the ones bm25s builds (same formula, same float32
arithmetic), and bm25s searches, saves and loads them.

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
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from gradir.collections.records import Document
from gradir.retrieval.run import Run

_IDS_FILE = "doc_ids.json"
_CHUNK_DOCUMENTS = 20_000  # documents tokenised at once


class BM25Index:
    def __init__(
        self,
        doc_ids: Sequence[str],
        texts: Iterable[str],
        *,
        k1: float = 1.2,
        b: float = 0.75,
        language: str = "english",
    ):
        self.doc_ids = list(doc_ids)
        self.stemmer = Stemmer.Stemmer(language)
        self.stopwords = "en" if language == "english" else None
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        if self.doc_ids:  # ``texts``: one per id, in order (read once)
            scores, vocab = streamed_scores(texts, len(self.doc_ids), k1=k1, b=b, stopwords=self.stopwords, stemmer=self.stemmer)
            indexed(self.retriever, scores, vocab)

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


def streamed_scores(
    texts: Iterable[str], n_docs: int, *, k1: float, b: float, stopwords: str | None, stemmer,
    chunk_documents: int = _CHUNK_DOCUMENTS,
) -> tuple[dict, dict[str, int]]:
    """bm25s' Lucene score matrix of ``texts`` (CSC, documents × terms) and its vocabulary.

    score(t, d) = idf(t) · tf / (tf + k1·(1 − b + b·|d| / avgdl)),
    idf(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))   (Lucene's BM25; Kamphuis et al., ECIR 2020)

    Pass one reads ``texts`` in chunks and keeps, per chunk, each document's distinct term
    ids and counts (8 bytes an entry); pass two scores each chunk once the document
    frequencies and the mean length are known and places its entries straight into the
    CSC arrays (8 bytes an entry), freeing the chunk as it goes.
    """
    vocab: dict[str, int] = {}
    chunks: list[tuple[range, np.ndarray, np.ndarray]] = []  # (its documents, term ids, counts)
    lengths = np.zeros(n_docs, dtype=np.int64)
    distinct = np.zeros(n_docs, dtype=np.int64)
    iterator, start = iter(texts), 0
    while chunk := list(islice(iterator, chunk_documents)):
        tokens = bm25s.tokenize(chunk, stopwords=stopwords, stemmer=stemmer, return_ids=False, show_progress=False)
        ids = np.fromiter((vocab.setdefault(t, len(vocab)) for doc in tokens for t in doc), dtype=np.int64)
        sizes = np.fromiter((len(doc) for doc in tokens), dtype=np.int64, count=len(tokens))
        doc_of = np.repeat(np.arange(len(tokens), dtype=np.int64), sizes)
        pairs, tf = np.unique((doc_of << 32) | ids, return_counts=True)  # sorted by document, then term
        chunks.append((range(start, start + len(tokens)), (pairs & 0xFFFFFFFF).astype(np.int32), tf.astype(np.float32)))
        lengths[start:start + len(tokens)] = sizes
        distinct[start:start + len(tokens)] = np.bincount(pairs >> 32, minlength=len(tokens))
        start += len(tokens)
    if start != n_docs:
        raise ValueError(f"expected {n_docs} documents, read {start}")
    document_frequency = np.zeros(len(vocab), dtype=np.int64)
    for _, term, _ in chunks:
        document_frequency += np.bincount(term, minlength=len(vocab))
    idf = np.log(1 + (n_docs - document_frequency + 0.5) / (document_frequency + 0.5)).astype(np.float32)
    norm = k1 * ((1 - b) + b * lengths / (lengths.mean() if n_docs else 1.0))
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(document_frequency, out=indptr[1:])
    data = np.empty(indptr[-1], dtype=np.float32)
    indices = np.empty(indptr[-1], dtype=np.int32)
    free = indptr[:-1].copy()  # each term's next free slot: documents ascend within a term
    chunks.reverse()
    while chunks:
        documents, term, tf = chunks.pop()
        doc_index = np.repeat(np.arange(documents.start, documents.stop, dtype=np.int32),
                              distinct[documents.start:documents.stop])
        # float64 arithmetic stored as float32, as bm25s computes it document by document
        score = idf[term] * (tf / (norm[doc_index] + tf))
        order = np.argsort(term, kind="stable")
        by_term = term[order]
        place = free[by_term] + np.arange(len(by_term)) - np.searchsorted(by_term, by_term)
        data[place], indices[place] = score[order], doc_index[order]
        free += np.bincount(term, minlength=len(vocab))
    return {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}, vocab


def indexed(retriever: bm25s.BM25, scores: dict, vocab: dict[str, int]) -> bm25s.BM25:
    """``retriever`` given the score matrix and vocabulary of :func:`streamed_scores`, as ``bm25s.BM25.index`` leaves it."""
    retriever.scores, retriever.vocab_dict = scores, {**vocab, "": len(vocab)}  # "": a query with no known term
    retriever.unique_token_ids_set = set(retriever.vocab_dict.values())
    retriever.nonoccurrence_array = None  # Lucene's BM25 scores only the terms a document has
    return retriever


def collection_key(documents: Mapping[str, Document], settings: str) -> str:
    """A digest of every document's id and text, in order, and of the index settings."""
    digest = hashlib.blake2b(f"bm25s {bm25s.__version__} {settings}\0".encode(), digest_size=16)
    for doc_id, document in documents.items():
        digest.update(doc_id.encode() + b"\0" + document.full_text.encode() + b"\0")
    return digest.hexdigest()


def collection_index(documents: Mapping[str, Document], cache_dir: Path | None) -> BM25Index:
    """The BM25 index of ``documents``: loaded from ``cache_dir`` when saved before, else built (and saved there)."""
    doc_ids = list(documents)
    texts = (documents[d].full_text for d in doc_ids)  # made one at a time: no copy of the corpus's text
    if cache_dir is None:
        return BM25Index(doc_ids, texts)
    folder = Path(cache_dir) / "bm25" / collection_key(documents, "k1=1.2 b=0.75 lucene english")
    if (folder / _IDS_FILE).is_file():
        return BM25Index.load(folder)
    index = BM25Index(doc_ids, texts)
    folder.parent.mkdir(parents=True, exist_ok=True)
    index.save(folder)
    return index

