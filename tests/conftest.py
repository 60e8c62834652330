"""Shared test set-up: offline models, a private embedding cache, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny_beir"
BAD = DATA / "bad"
SHARED_BEIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test session gets its own embedding cache, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "gradir-cache"
    monkeypatch.setenv("GRADIR_CACHE_DIR", str(cache))
    return cache


def run_cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``gradir`` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "gradir", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=1200,
    )


def shared_collection(name: str) -> Path:
    path = SHARED_BEIR / name
    if not path.is_dir():
        pytest.fail(f"{path} is missing: the tests need ../shared/data beside the repository")
    return path


def write_scifact_slice(out: Path, queries: int = 20, extra_documents: int = 200, seed: int = 0) -> Path:
    """A small real collection: SciFact's first test queries, their judged documents and random others."""
    import json
    import random

    source = shared_collection("scifact")
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    header, *lines = (source / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines]
    chosen = sorted({r[0] for r in rows}, key=int)[:queries]
    rows = [r for r in rows if r[0] in chosen]
    judged = {r[1] for r in rows}
    with open(source / "corpus.jsonl", encoding="utf-8") as handle:
        documents = [json.loads(line) for line in handle]
    others = [d for d in documents if d["_id"] not in judged]
    kept = [d for d in documents if d["_id"] in judged] + random.Random(seed).sample(others, extra_documents)
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in kept), encoding="utf-8")
    with open(source / "queries.jsonl", encoding="utf-8") as handle:
        selected = [line for line in handle if json.loads(line)["_id"] in chosen]
    (out / "queries.jsonl").write_text("".join(selected), encoding="utf-8")
    (out / "qrels" / "test.tsv").write_text(header + "\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def scifact_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scifact_slice(tmp_path_factory.mktemp("scifact-slice") / "scifact")


SMALL_PIPELINE = """
[run]
collection = "{collection}"
cache_dir = "{cache}"
[generate]
passages = 4
types = ["question", "keywords"]
attempts = 2
[mine]
top_k = 3
[train]
loss = "{loss}"
max_steps = 4
batch_size = 2
list_size = 2
save_steps = 2
"""


def small_pipeline_config(path: Path, collection: Path, cache: Path, loss: str = "bixse", extra: str = "") -> Path:
    """A pipeline config sized for tests: 4 passages, 2 query types, 4 training steps."""
    path.write_text(SMALL_PIPELINE.format(collection=collection, cache=cache, loss=loss) + extra, encoding="utf-8")
    return path
