"""Shared test set-up: offline models, a private embedding cache, a CLI runner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gradir.llm.llamacpp_backend import default_gguf_path, resolve_gguf

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


def write_scifact_slice(out: Path, queries: int = 20, extra_documents: int = 200, seed: int = 0, messy: bool = False) -> Path:
    """A small real collection: SciFact's first test queries, their judged documents and random others.

    ``messy``: as real collections come, with two empty documents (no title, no text) and a
    qrels line naming one of them; only a lenient read takes it.
    """
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
    if messy:
        kept += [{"_id": "empty-1", "title": "", "text": ""}, {"_id": "empty-2", "title": "", "text": " "}]
        rows.append([chosen[0], "empty-1", "1"])
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in kept), encoding="utf-8")
    with open(source / "queries.jsonl", encoding="utf-8") as handle:
        selected = [line for line in handle if json.loads(line)["_id"] in chosen]
    (out / "queries.jsonl").write_text("".join(selected), encoding="utf-8")
    (out / "qrels" / "test.tsv").write_text(header + "\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def scifact_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scifact_slice(tmp_path_factory.mktemp("scifact-slice") / "scifact", messy=True)


SMALL_PIPELINE = """
[run]
collection = "{collection}"
cache_dir = "{cache}"
lenient = true
[generate]
passages = 4
types = ["question", "keywords"]
types_per_passage = 0
attempts = 2
[mine]
top_k = 3
validation_top_k = 4
[train]
loss = "{loss}"
max_steps = 4
batch_size = 2
list_size = 2
save_steps = 2
"""


def small_pipeline_config(path: Path, collection: Path, cache: Path, loss: str = "bixse", extra: str = "") -> Path:
    """A pipeline config sized for tests: 4 passages, 2 query types, 4 training steps, a lenient read."""
    path.write_text(SMALL_PIPELINE.format(collection=collection, cache=cache, loss=loss) + extra, encoding="utf-8")
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def hf_smollm2():
    """The embedded GGUF through transformers (de-quantised once per session: it takes ~25 s on 2 cores)."""
    from gradir.llm import load_backend

    backend = load_backend(f"hf:{default_gguf_path()}")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory):
    """A real llama.cpp OpenAI-compatible server on 127.0.0.1, stopped after the tests.

    It serves the F16 copy that the in-process backend uses (made once in the session's
    cache): the same weights, about twice as fast to process prompts on x86 CPUs.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "gradir-cache"))
        model = resolve_gguf(None)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--logits_all", "true", "--model_alias", "smollm2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                pytest.fail("the llama.cpp server exited at start")
            time.sleep(0.5)
        else:
            pytest.fail("the llama.cpp server did not start within 120 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, scifact_slice: Path) -> tuple[Path, Path, dict]:
    """One uninterrupted small pipeline run (its own cache): the reference other tests compare with."""
    import json

    root = tmp_path_factory.mktemp("pipeline")
    config = small_pipeline_config(root / "gradir.toml", scifact_slice, root / "cache", extra="[grade]\ncheck_queries = 2\n")
    result = run_cli("run", config, "--out", root / "run", "--json")
    assert result.returncode == 0, result.stderr
    return root, config, json.loads(result.stdout)
