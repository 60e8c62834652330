"""Encoding under ONNX Runtime, OpenVINO and bf16 autocast: the vectors match PyTorch fp32's, exports are reused, caches kept apart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, run_cli, shared_collection
from gradir.collections import load_collection
from gradir.retrieval.encoding import Encoder
from gradir.errors import GradirError
from gradir.models import default_model_path, model_fingerprint
from gradir.precision import native_bfloat16
from gradir.retrieval.runtimes import export_into_model_folder

RUNTIMES = [("onnx", "fp32", 0.9999), ("onnx", "int8", 0.99), ("openvino", "fp32", 0.9999), ("openvino", "int8", 0.99),
            ("torch", "bf16", 0.99)]


@pytest.fixture(scope="module")
def scifact_texts() -> list[str]:
    """Real documents of several lengths: the first 20 SciFact abstracts (many past 256 tokens) and 10 titles."""
    documents = list(load_collection(shared_collection("scifact")).documents.values())
    return [d.full_text for d in documents[:20]] + [d.title for d in documents[20:30] if d.title]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def torch_vectors(scifact_texts: list[str]) -> np.ndarray:
    return Encoder(cache_dir=False, backend="torch", show_progress=False).encode_documents(scifact_texts)


@pytest.mark.parametrize(("backend", "precision", "floor"), RUNTIMES)
def test_exported_model_matches_pytorch_on_real_text(
    backend: str, precision: str, floor: float, scifact_texts: list[str], torch_vectors: np.ndarray, exports: Path
) -> None:
    encoder = Encoder(cache_dir=False, exports_dir=exports, backend=backend, precision=precision, show_progress=False)
    vectors = encoder.encode_documents(scifact_texts)
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosines.min() >= floor, f"{backend} {precision}: lowest cosine {cosines.min():.5f} < {floor}"
    if precision != "fp32":
        assert cosines.min() < 0.99999, f"{precision} vectors equal fp32 ones: the lower precision was not used"


def test_a_cache_filled_under_one_runtime_is_not_read_under_another(tmp_path: Path, exports: Path) -> None:
    texts = ["vitamin d and bone density", "coffee and mortality"]
    Encoder(cache_dir=tmp_path, backend="torch", show_progress=False).encode_documents(texts)
    for backend, precision in (("onnx", "fp32"), ("onnx", "int8"), ("openvino", "int8"), ("torch", "bf16")):
        other = Encoder(cache_dir=tmp_path, exports_dir=exports, backend=backend, precision=precision, show_progress=False)
        other.encode_documents(texts)
        assert other.cache_hits == 0 and other.encoded_count == 2, (backend, precision)
    again = Encoder(cache_dir=tmp_path, exports_dir=exports, backend="onnx", precision="int8", show_progress=False)
    again.encode_documents(texts)
    assert again.cache_hits == 2 and again.encoded_count == 0


def test_an_export_is_made_once_and_a_folder_export_follows_the_weights(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(default_model_path(), model)
    fingerprint = model_fingerprint(model)
    written = export_into_model_folder(model, "onnx", "int8")
    assert written == model / "onnx" / "model_qint8.onnx" and written.is_file()
    assert model_fingerprint(model) == fingerprint  # an export is derived data, not part of the model
    stamp = written.stat().st_mtime_ns

    exports = tmp_path / "exports"
    Encoder(model, cache_dir=False, exports_dir=exports, backend="onnx", precision="int8").encode_documents(["a text"])
    assert not exports.exists(), "the folder's own export should have been used"
    assert export_into_model_folder(model, "onnx", "int8").stat().st_mtime_ns == stamp  # not exported again

    # New weights under the same path: the folder's export is stale and is not used.
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    Encoder(model, cache_dir=False, exports_dir=exports, backend="onnx", precision="int8").encode_documents(["a text"])
    assert (exports / "exports" / model_fingerprint(model) / "onnx" / "model_qint8.onnx").is_file()


def test_int8_needs_an_exported_runtime() -> None:
    with pytest.raises(GradirError, match="int8 needs backend onnx or openvino"):
        Encoder(cache_dir=False, backend="torch", precision="int8")
    with pytest.raises(GradirError, match="bf16 needs backend torch"):
        Encoder(cache_dir=False, backend="onnx", precision="bf16")
    with pytest.raises(GradirError, match="unknown backend 'tensorrt'"):
        Encoder(cache_dir=False, backend="tensorrt")


def test_the_cli_names_a_bad_runtime_without_a_traceback() -> None:
    result = run_cli("eval", "--collection", TINY, "--backend", "onnx", "--precision", "int4")
    assert result.returncode == 2
    assert "unknown precision 'int4'" in result.stderr and "Traceback" not in result.stderr


def test_bf16_asked_for_where_it_is_emulated_says_so_once() -> None:
    """bf16 on hardware without native bfloat16 (an AVX2-only CPU) is many times slower than fp32: the run warns.

    (That fp32 encoders stay quiet is checked by test_cached_training_runs_through_the_cli: one warning, its training's.)
    """
    result = run_cli("eval", "--collection", TINY, "--precision", "bf16", "--json")
    assert result.returncode == 0, result.stderr
    emulated = not native_bfloat16()
    assert result.stderr.count("no native bfloat16") == (1 if emulated else 0), result.stderr
