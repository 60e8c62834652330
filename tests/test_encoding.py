from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

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
