from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gradir.collections.records import Document
from gradir.retrieval.embedding_cache import EmbeddingCache, text_key
from gradir.retrieval.encoding import Encoder
from gradir.errors import GradirError
from gradir.models import default_model_path, model_fingerprint

TEXTS = ["vitamin d and bone density", "aerobic exercise lowers blood pressure", "coffee and mortality"]


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("model") / "minilm"
    shutil.copytree(default_model_path(), target)
    return target


def test_vectors_match_plain_sentence_transformers_and_are_unit_length(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    vectors = Encoder(cache_dir=tmp_path).encode_documents(TEXTS)
    reference = SentenceTransformer(str(default_model_path())).encode(TEXTS, normalize_embeddings=True)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_second_encoding_is_served_from_the_cache_without_loading_the_model(tmp_path: Path) -> None:
    first = Encoder(cache_dir=tmp_path)
    vectors = first.encode_documents(TEXTS + TEXTS[:1])  # a duplicate is encoded once
    assert first.encoded_count == 3

    second = Encoder(cache_dir=tmp_path)
    again = second.encode_documents(list(reversed(TEXTS)))
    assert second.encoded_count == 0 and second.cache_hits == 3
    assert second._model is None
    np.testing.assert_array_equal(again, vectors[[2, 1, 0]])


def test_query_prompt_is_part_of_the_cache_key(tmp_path: Path) -> None:
    plain = Encoder(cache_dir=tmp_path).encode_queries(TEXTS[:1])
    prompted_encoder = Encoder(cache_dir=tmp_path, query_prompt="query: ")
    prompted = prompted_encoder.encode_queries(TEXTS[:1])
    assert prompted_encoder.encoded_count == 1
    assert not np.allclose(plain, prompted)


def test_a_changed_model_never_gets_stale_vectors(tmp_path: Path, model_copy: Path) -> None:
    cache = tmp_path / "cache"
    before = Encoder(model_copy, cache_dir=cache).encode_documents(TEXTS)
    fingerprint = model_fingerprint(model_copy)

    # Same path, new content: switch the pooling from mean to CLS token.
    pooling = model_copy / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    assert model_fingerprint(model_copy) != fingerprint

    changed = Encoder(model_copy, cache_dir=cache)
    after = changed.encode_documents(TEXTS)
    assert changed.encoded_count == 3 and changed.cache_hits == 0
    assert not np.allclose(before, after, atol=1e-3)


def test_max_seq_length_is_part_of_the_cache_key(tmp_path: Path) -> None:
    long_text = ["word " * 100]
    full = Encoder(cache_dir=tmp_path).encode_documents(long_text)
    short_encoder = Encoder(cache_dir=tmp_path, max_seq_length=8)
    short = short_encoder.encode_documents(long_text)
    assert short_encoder.encoded_count == 1
    assert not np.allclose(full, short)


def test_models_are_local_paths_only(tmp_path: Path) -> None:
    with pytest.raises(GradirError, match="nothing is downloaded"):
        Encoder("sentence-transformers/all-mpnet-base-v2", cache_dir=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GradirError, match="not a sentence-transformers model"):
        Encoder(tmp_path / "empty", cache_dir=False)


def _append_from_process(directory: str, worker: int) -> None:
    cache = EmbeddingCache(directory, "shared")
    for chunk in range(20):
        keys = [text_key(f"{worker}-{chunk}-{i}") for i in range(7)]
        cache.put_many(keys, np.full((7, 4), worker * 1000 + chunk, dtype=np.float32))


def test_appends_from_several_processes_each_keep_their_own_vectors(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_from_process, args=(str(tmp_path), w)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    cache = EmbeddingCache(tmp_path, "shared")
    keys = [text_key(f"{w}-{c}-{i}") for w in range(3) for c in range(20) for i in range(7)]
    rows = cache.rows_of(keys)
    assert len(cache) == len(keys) and len(set(rows.tolist())) == len(keys)
    expected = np.repeat([w * 1000 + c for w in range(3) for c in range(20)], 7)
    np.testing.assert_array_equal(cache.vectors(rows)[:, 0], expected)


def test_a_torn_row_or_unkeyed_rows_left_by_a_crash_are_written_over_and_nothing_keyed_is_lost(tmp_path: Path) -> None:
    a, b, c, d = (text_key(t) for t in "abcd")
    cache = EmbeddingCache(tmp_path, "crash")
    cache.put_many([a, b], np.array([[1, 1, 1], [2, 2, 2]], dtype=np.float32))
    with open(cache.vectors_path, "ab") as file:  # a crash after the vectors were written, before their keys
        file.write(np.full((2, 3), 8, dtype=np.float32).tobytes() + np.float32(9).tobytes() * 2)
    again = EmbeddingCache(tmp_path, "crash")
    assert again.rows_of([c])[0] == -1
    again.put_many([c], np.array([[3, 3, 3]], dtype=np.float32))
    rows = again.rows_of([a, b, c, d])
    assert rows.tolist() == [0, 1, 2, -1]
    np.testing.assert_array_equal(again.vectors(rows[:3]), [[1, 1, 1], [2, 2, 2], [3, 3, 3]])
    assert cache.vectors_path.stat().st_size == 3 * 3 * 4 and len(again) == 3
    assert cache.rows_of([c])[0] == 2  # a reader opened before the append sees it too


def test_lookups_find_every_row_before_and_after_the_sorted_index_is_rebuilt(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "many")
    keys = [text_key(str(i)) for i in range(70_000)]  # enough to build the sorted index at once
    cache.put_many(keys, np.arange(70_000, dtype=np.float32)[:, None])
    assert (cache.rows_of(keys) == np.arange(70_000)).all()
    more = [text_key(f"more {i}") for i in range(10)]  # few: looked up through the recent keys
    cache.put_many(more, np.full((10, 1), -1, dtype=np.float32))
    found = cache.rows_of(more + keys[:3] + [text_key("absent")])
    assert found.tolist() == [*range(70_000, 70_010), 0, 1, 2, -1]
    with pytest.raises(ValueError, match="16-byte"):
        cache.rows_of([b"short"])


def test_a_cache_indexed_in_sqlite_is_converted_once_and_keeps_its_vectors(tmp_path: Path) -> None:
    folder = tmp_path / "embeddings" / "old"
    folder.mkdir(parents=True)
    np.array([[1, 1], [7, 7], [2, 2]], dtype=np.float32).tofile(folder / "vectors.f32")  # row 1: never indexed
    with sqlite3.connect(folder / "rows.sqlite") as db:
        db.execute("CREATE TABLE rows (key BLOB PRIMARY KEY, row INTEGER NOT NULL)")
        db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('dim', 2)")
        db.executemany("INSERT INTO rows VALUES (?, ?)", [(text_key("x"), 0), (text_key("y"), 2)])
    db.close()
    cache = EmbeddingCache(tmp_path, "old")
    assert not (folder / "rows.sqlite").exists() and cache.dim == 2
    rows = cache.rows_of([text_key("x"), text_key("y"), text_key("z")])
    assert rows.tolist() == [0, 2, -1]
    np.testing.assert_array_equal(cache.vectors(rows[:2]), [[1, 1], [2, 2]])
    cache.put_many([text_key("z")], np.array([[3, 3]], dtype=np.float32))
    assert EmbeddingCache(tmp_path, "old").rows_of([text_key("z")]).tolist() == [3]


def test_a_collection_encoded_in_one_go_is_searched_in_place_and_any_other_is_copied(tmp_path: Path) -> None:
    documents = {f"d{i}": Document(f"d{i}", text) for i, text in enumerate(TEXTS + ["green tea and cancer"])}
    first = Encoder(cache_dir=tmp_path)
    first.encode_documents([TEXTS[1]])  # cached before the collection, and another text after it:
    first.encode_documents(["an unrelated text"])  # the collection's rows are not one block
    mixed = first.document_index(documents)
    assert not np.shares_memory(mixed._vectors, first._cache._mapped(1))

    in_one_go = {f"e{i}": Document(f"e{i}", f"{text} (second collection)") for i, text in enumerate(TEXTS)}
    block = first.document_index(in_one_go)
    assert np.shares_memory(block._vectors, first._cache._mapped(1))

    queries = first.encode_queries(TEXTS)
    reference = Encoder(cache_dir=False).encode_documents([d.full_text for d in in_one_go.values()])
    for index, ids in ((block, list(in_one_go)), (mixed, list(documents)[:3])):
        found = index.search(["q0", "q1", "q2"], queries, 1)
        assert [next(iter(found[f"q{i}"])) for i in range(3)] == ids
    np.testing.assert_allclose(np.stack([block._vectors[block.doc_ids.index(d)] for d in in_one_go]), reference, atol=1e-5)
