"""Inference runtimes for encoding: PyTorch (fp32 or bf16), ONNX Runtime or OpenVINO (fp32 or int8).

Training stays in PyTorch; encoding (filtering, mining, evaluation) can run the model's
transformer in another runtime, or PyTorch's under bfloat16 autocast (``bf16``: the
matrix products in bfloat16, layer norms and softmaxes in float32; it pays where the
processor multiplies bfloat16 natively, see :mod:`gradir.precision`). Tokenisation, pooling and normalisation stay
sentence-transformers' own modules, so any model whose first module is a
``Transformer`` works, and only the transformer's forward pass changes runtime.

The exports, laid out as sentence-transformers lays them out in a model folder:

- ``onnx/model.onnx``: the transformer exported with ``torch.onnx.export`` (opset 17,
  dynamic batch and sequence axes). ONNX Runtime fp32 and OpenVINO fp32 both read it.
- ``onnx/model_qint8.onnx``: ONNX Runtime int8, dynamic quantisation
  (``onnxruntime.quantization.quantize_dynamic``): weights int8 per output channel,
  activations quantised per batch at run time, so no calibration data is needed. The
  feed-forward output projections stay fp32: their inputs (after GELU) have the widest
  range, and quantising them cost the most cosine to the fp32 vectors (0.988 → 0.994
  lowest cosine on 300 SciFact documents when they are kept).
- ``openvino/openvino_model_qint8.xml``: OpenVINO int8, NNCF's int8 weight compression
  (asymmetric, per channel); OpenVINO's CPU plugin quantises activations at run time
  where the processor supports it. No calibration data either.

An export is made once per model *content* (:func:`gradir.models.model_fingerprint`,
which ignores the ``onnx/`` and ``openvino/`` folders) and reused: a folder export is
used when its ``export.json`` names the model's current fingerprint (the pipeline
exports the tuned model into its own folder after training); otherwise exports live in
``<cache>/exports/<fingerprint>/``.

Why not sentence-transformers' own ``backend="onnx"`` / ``"openvino"``: they load
through ``optimum-onnx`` / ``optimum-intel``, whose releases pin ``transformers`` below 5
(and torchvision), which sentence-transformers 6 cannot run with. gradir calls the same
runtimes (ONNX Runtime, OpenVINO, NNCF) directly instead.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from gradir.atomic import write_text_atomic
from gradir.errors import GradirError
from gradir.models import model_fingerprint

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Backend = Literal["torch", "onnx", "openvino"]
Precision = Literal["fp32", "bf16", "int8"]
BACKENDS: tuple[str, ...] = ("torch", "onnx", "openvino")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
#: chosen by measurement (benchmarks/encode.py, benchmarks/RESULTS.md): the fastest
#: runtime whose nDCG@10 on SciFact and NFCorpus stays within 0.005 of fp32 PyTorch
DEFAULT_BACKEND = "torch"
DEFAULT_PRECISION = "fp32"

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_FILES = {
    ("onnx", "fp32"): "onnx/model.onnx",
    ("onnx", "int8"): "onnx/model_qint8.onnx",
    ("openvino", "fp32"): "onnx/model.onnx",
    ("openvino", "int8"): "openvino/openvino_model_qint8.xml",
}
_RECORD = "export.json"


def check_runtime(backend: str, precision: str) -> None:
    """A clear error for an unknown backend or precision, int8 under PyTorch or bf16 outside it."""
    if backend not in BACKENDS:
        raise GradirError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
    if precision not in PRECISIONS:
        raise GradirError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")
    if backend == "torch" and precision == "int8":
        raise GradirError("precision int8 needs backend onnx or openvino (PyTorch encodes in fp32 or bf16)")
    if backend != "torch" and precision == "bf16":
        raise GradirError(f"precision bf16 needs backend torch ({backend} encodes in fp32 or int8)")


def export_file(
    model: SentenceTransformer, model_path: Path, fingerprint: str, backend: str, precision: str, cache_dir: Path
) -> Path:
    """The exported file of ``model`` (content ``fingerprint``) for a runtime, exported first if no valid export exists."""
    relative = _FILES[backend, precision]
    for root in (model_path, cache_dir / "exports" / fingerprint):
        if _valid_export(root, relative, fingerprint):
            return root / relative
    root = cache_dir / "exports" / fingerprint
    write_export(model, root, backend, precision, fingerprint)
    return root / relative


def export_into_model_folder(model_path: Path, backend: str, precision: str) -> Path | None:
    """Export a (tuned) model into its own folder, next to its PyTorch weights; None for torch."""
    check_runtime(backend, precision)
    if backend == "torch":
        return None
    fingerprint = model_fingerprint(model_path)
    relative = _FILES[backend, precision]
    if not _valid_export(model_path, relative, fingerprint):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
        write_export(model, model_path, backend, precision, fingerprint)
    return model_path / relative


def _valid_export(root: Path, relative: str, fingerprint: str) -> bool:
    record = root / Path(relative).parent / _RECORD
    if not (root / relative).is_file() or not record.is_file():
        return False
    try:
        return json.loads(record.read_text()).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def write_export(model: SentenceTransformer, root: Path, backend: str, precision: str, fingerprint: str) -> None:
    """Write the file(s) one runtime needs under ``root``; each appears complete or not at all."""
    onnx_fp32 = root / _FILES["onnx", "fp32"]
    if not _valid_export(root, _FILES["onnx", "fp32"], fingerprint):
        _atomic_file(onnx_fp32, lambda tmp: _export_onnx(model, tmp))
        _record(onnx_fp32.parent, fingerprint)
    if (backend, precision) == ("onnx", "int8"):
        _atomic_file(root / _FILES["onnx", "int8"], lambda tmp: _quantize_onnx(onnx_fp32, tmp))
    elif (backend, precision) == ("openvino", "int8"):
        target = root / _FILES["openvino", "int8"]
        _atomic_file(target, lambda tmp: _compress_openvino(onnx_fp32, tmp), companion=".bin")
        _record(target.parent, fingerprint)


def _record(folder: Path, fingerprint: str) -> None:
    write_text_atomic(folder / _RECORD, json.dumps({"fingerprint": fingerprint, "exported_by": "gradir"}) + "\n")


def _atomic_file(target: Path, write: Callable[[Path], None], companion: str | None = None) -> None:
    """Run ``write`` into a temporary folder beside ``target``, then move the file(s) into place.

    ``companion`` names a second file with the same stem (OpenVINO's ``.bin`` weights),
    moved first so that the ``.xml`` never appears without its weights.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp_dir:
        tmp = Path(tmp_dir) / target.name
        write(tmp)
        if companion:
            os.replace(tmp.with_suffix(companion), target.with_suffix(companion))
        os.replace(tmp, target)


def _export_onnx(model: SentenceTransformer, path: Path) -> None:
    import torch

    transformer = _transformer_module(model)
    features = transformer.preprocess(["an example text for the export", "short"])
    names = [name for name in _INPUTS if name in features]

    class _LastHiddenState(torch.nn.Module):
        def __init__(self, hf_model: torch.nn.Module):
            super().__init__()
            self.hf_model = hf_model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.hf_model(**dict(zip(names, tensors))).last_hidden_state

    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "token_embeddings"]}
    hf_model = transformer.model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(hf_model), tuple(features[name] for name in names), str(path),
            input_names=names, output_names=["token_embeddings"], dynamic_axes=axes,
            opset_version=17, dynamo=False,
        )


def _quantize_onnx(source: Path, path: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    ffn_outputs = [n.name for n in graph.node if n.op_type == "MatMul" and "/output/dense/" in n.name and "attention" not in n.name]
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # "consider pre-processing" noise
    quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=ffn_outputs)


def _compress_openvino(source: Path, path: Path) -> None:
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)
    model = ov.Core().read_model(str(source))
    compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    ov.save_model(compressed, str(path), compress_to_fp16=False)


def _transformer_module(model: SentenceTransformer):
    from sentence_transformers.base.modules.transformer import Transformer

    first = model[0]
    if not isinstance(first, Transformer):
        raise GradirError(
            f"backends onnx and openvino need a model whose first module is a Transformer "
            f"(got {type(first).__name__}); use backend torch"
        )
    return first


def use_runtime(model: SentenceTransformer, file: Path, backend: str) -> None:
    """Route the transformer's forward pass of ``model`` through ONNX Runtime or OpenVINO.

    Every other module (tokeniser, pooling, normalisation, dense layers) stays the
    model's own, so ``model.encode`` returns vectors of the same kind.
    """
    import torch

    transformer = _transformer_module(model)
    if backend == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
            return session.run(None, feeds)[0]
    elif backend == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(file), "CPU")
        request = compiled.create_infer_request()
        names = [i.get_any_name() for i in compiled.inputs]

        def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
            return np.array(request.infer(feeds)[0])
    else:
        raise GradirError(f"backend '{backend}' has no exported runtime")

    def forward(features: dict, **_: object) -> dict:
        feeds = {name: features[name].cpu().numpy().astype(np.int64, copy=False) for name in names}
        features[transformer.module_output_name] = torch.from_numpy(run(feeds))
        return features

    transformer.forward = forward

