from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import TINY
from gradir.collections import load_collection
from gradir.retrieval.encoding import Encoder
from gradir.collections.records import Document
from gradir.retrieval.bm25 import BM25Index, collection_index
from gradir.retrieval.dense import ApproximateSearch, DenseIndex
from gradir.retrieval.embedding_cache import EmbeddingCache, text_key
from gradir.retrieval.search import search


def test_dense_index_is_exact_cosine_search() -> None:
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(50, 8)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = docs[[3, 7]] + 0.01
    run = DenseIndex([f"d{i}" for i in range(50)], docs).search(["a", "b"], queries, top_k=5)
    expected = np.argsort(-(queries @ docs.T), axis=1)[:, :5]
    assert list(run["a"]) == [f"d{i}" for i in expected[0]]
    assert list(run["b"])[0] == "d7"
    assert len(run["a"]) == 5


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "ivfpq"])
def test_approximate_indexes_find_most_of_the_exact_top_k_with_exact_scores(kind: str) -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(40, 32))
    docs = (centres[rng.integers(0, 40, 4000)] + 0.6 * rng.normal(size=(4000, 32))).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = docs[rng.choice(4000, 100, replace=False)] + 0.2 * rng.normal(size=(100, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(4000)]
    qids = [f"q{i}" for i in range(100)]
    exact = DenseIndex(ids, docs).search(qids, queries, top_k=10)
    approximate = DenseIndex(ids, docs, ApproximateSearch(kind=kind, nprobe=8)).search(qids, queries, top_k=10)
    recall = np.mean([len(set(exact[q]) & set(approximate[q])) / 10 for q in qids])
    assert 0.9 <= recall
    assert recall < 1.0 or kind == "hnsw"  # IVF visits 8 of its 102 cells: it does miss some
    for q, row in zip(qids, queries):  # what it returns, it scores exactly
        for did, score in approximate[q].items():
            assert score == pytest.approx(float(docs[int(did[1:])] @ row), abs=1e-5)
    with pytest.raises(ValueError, match="unknown index"):
        ApproximateSearch(kind="annoy")


def _resident_file_pages() -> int:
    """This process' resident memory-mapped file pages, in bytes (Linux: ``RssFile``)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("RssFile:"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads RssFile from /proc")
def test_an_exact_index_on_the_embedding_cache_gives_its_pages_back_and_still_searches(tmp_path) -> None:
    rng = np.random.default_rng(3)
    docs = rng.normal(size=(40_000, 384)).astype(np.float32)  # 61 MB
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    cache = EmbeddingCache(tmp_path, "m")
    keys = [text_key(f"d{i}") for i in range(len(docs))]
    cache.put_many(keys, docs)
    vectors, order = cache.block_of(cache.rows_of(keys))
    ids, qids = [f"d{i}" for i in order], ["a", "b"]
    index = DenseIndex(ids, vectors)
    before = _resident_file_pages()
    found = index.search(qids, docs[[5, 9]], top_k=10)  # exact search reads every page
    touched = _resident_file_pages()
    index.drop_resident_pages()
    assert touched - before > 50e6
    assert touched - _resident_file_pages() > 50e6
    assert index.search(qids, docs[[5, 9]], top_k=10) == found == DenseIndex(ids, np.array(vectors)).search(qids, docs[[5, 9]], top_k=10)
    in_memory = DenseIndex(ids, np.array(vectors))
    in_memory.drop_resident_pages()  # vectors of the process' own: nothing to give back, nothing lost
    assert in_memory.search(qids, docs[[5, 9]], top_k=10) == found


def test_a_collection_too_small_to_train_pq_codes_is_searched_exactly() -> None:
    rng = np.random.default_rng(2)
    docs = rng.normal(size=(300, 32)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    ids, qids = [f"d{i}" for i in range(300)], ["a", "b"]
    small = DenseIndex(ids, docs, ApproximateSearch(kind="ivfpq"))
    assert small.settings.kind == "exact"
    assert small.search(qids, docs[:2], top_k=10) == DenseIndex(ids, docs).search(qids, docs[:2], top_k=10)
    with pytest.raises(ValueError, match="pq_subvectors 5 does not divide the 32 dimensions"):
        DenseIndex([f"d{i}" for i in range(700)], np.resize(docs, (700, 32)), ApproximateSearch(kind="ivfpq", pq_subvectors=5))


def test_bm25_stems_and_ranks_matching_documents_first() -> None:
    index = BM25Index(["a", "b", "c"], ["Statins lower cholesterol", "Running shoes", "Cholesterol levels rise"])
    run = index.search(["q1", "q2"], ["statin cholesterols", "zebra"], top_k=3)
    assert list(run["q1"])[0] == "a"
    assert set(run["q1"]) == {"a", "c"}
    assert run["q2"] == {}


@pytest.mark.parametrize("chunk_documents", [1, 7, 100_000])
def test_the_streamed_bm25_index_scores_as_bm25s_own_index(chunk_documents: int) -> None:
    import bm25s
    import Stemmer

    from gradir.retrieval.bm25 import indexed, streamed_scores

    collection = load_collection(TINY)
    texts = [d.full_text for d in collection.documents.values()] + ["", "the of and"]  # two with no term
    stemmer = Stemmer.Stemmer("english")
    scores, vocab = streamed_scores(texts, len(texts), k1=1.2, b=0.75, stopwords="en", stemmer=stemmer,
                                    chunk_documents=chunk_documents)
    reference = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    reference.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    assert sorted(vocab) == sorted(t for t in reference.vocab_dict if t)
    ours = indexed(bm25s.BM25(k1=1.2, b=0.75, method="lucene"), scores, vocab)
    for term in vocab:
        assert np.array_equal(ours.get_scores([term]), reference.get_scores([term])), term
    with pytest.raises(ValueError, match="expected 3 documents, read 2"):
        streamed_scores(texts[:2], 3, k1=1.2, b=0.75, stopwords="en", stemmer=stemmer)


def test_a_collection_bm25_index_is_saved_once_and_loaded_memory_mapped_with_the_same_results(tmp_path) -> None:
    texts = ["Statins lower cholesterol", "Running shoes", "Cholesterol levels rise", "Statin trials in the elderly"]
    documents = {f"d{i}": Document(f"d{i}", text) for i, text in enumerate(texts)}
    queries = (["q1", "q2"], ["statin cholesterols", "shoes for running"])
    built = collection_index(documents, tmp_path)
    loaded = collection_index(documents, tmp_path)
    assert isinstance(loaded.retriever.scores["data"], np.memmap)
    assert not isinstance(built.retriever.scores["data"], np.memmap)
    assert loaded.search(*queries, top_k=4) == built.search(*queries, top_k=4)
    assert len(list((tmp_path / "bm25").iterdir())) == 1

    edited = {**documents, "d1": Document("d1", "Statins and cholesterol in runners")}  # same ids, new text
    assert "d1" in collection_index(edited, tmp_path).search(*queries, top_k=4)["q1"]
    assert "d1" not in loaded.search(*queries, top_k=4)["q1"]
    assert len(list((tmp_path / "bm25").iterdir())) == 2


def test_every_retriever_finds_the_judged_documents(tmp_path) -> None:
    collection = load_collection(TINY)
    queries = collection.split_queries("test")
    encoder = Encoder(cache_dir=tmp_path)
    for retriever in ("dense", "bm25", "hybrid"):
        run = search(collection.documents, queries, retriever, encoder=encoder, top_k=3)
        assert next(iter(run["q1"])) == "d1", retriever
        assert next(iter(run["q3"])) == "d5", retriever
    # the dense index was built once: searching again reads only the queries' vectors
    looked_up = encoder.encoded_count + encoder.cache_hits
    assert looked_up == len(collection.documents) + 2 * len(queries)  # documents once; queries by dense and hybrid
    index = encoder.document_index(collection.documents)
    search(collection.documents, queries, "dense", encoder=encoder, top_k=3)
    assert encoder.document_index(collection.documents) is index
    assert encoder.encoded_count + encoder.cache_hits == looked_up + len(queries)
    fewer = dict(list(collection.documents.items())[:3])
    assert encoder.document_index(fewer) is not index and len(encoder.document_index(fewer).doc_ids) == 3
