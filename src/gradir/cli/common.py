"""What every command shares: the app, the common options, the LLM client and JSON output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from gradir.errors import GradirError

app = typer.Typer(
    name="gradir",
    help="Adapt text-embedding models to your own collection with synthetic data and graded labels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

CollectionOpt = Annotated[Path, typer.Option("--collection", "-c", help="BEIR folder (corpus, queries, qrels/).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object with the results on stdout.")]
LenientOpt = Annotated[bool, typer.Option("--lenient", help="Skip bad records and report how many and why.")]
SplitOpt = Annotated[str, typer.Option("--split", help="Which qrels split to evaluate on.")]
BackendOpt = Annotated[str, typer.Option("--backend", help="Encoding runtime: torch, onnx (ONNX Runtime) or openvino.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="Encoding precision: fp32, or int8 (onnx, openvino).")]
IndexOpt = Annotated[str, typer.Option("--index", help="Dense index: exact, hnsw, ivf or ivfpq (approximate; default parameters, see [index] in the config).")]


LLMOpt = Annotated[str, typer.Option("--llm", help="llamacpp[:GGUF], openai:URL@MODEL, hf:PATH or vllm:PATH.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the LLM call cache.")]
ApiKeyEnvOpt = Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the API key (openai backend).")]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight at once (openai backend).")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per request (openai backend).")]
RetriesOpt = Annotated[int, typer.Option("--max-retries", min=0, help="Retries of a failed request (openai backend).")]


def emit(result: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")


def check_retriever(retriever: str) -> None:
    from gradir.retrieval.search import RETRIEVERS

    if retriever not in RETRIEVERS:
        raise GradirError(f"--retriever: unknown retriever '{retriever}' (choose from {', '.join(RETRIEVERS)})")


def approximate_search(kind: str):
    """The ``--index`` option as the dense index's settings."""
    from gradir.retrieval.dense import INDEX_KINDS, ApproximateSearch

    if kind not in INDEX_KINDS:
        raise GradirError(f"--index: unknown index '{kind}' (choose from {', '.join(INDEX_KINDS)})")
    return ApproximateSearch(kind=kind)


def llm_client(spec: str, no_cache: bool, api_key_env: str, concurrency: int, timeout: float, max_retries: int):
    from gradir.llm import LLMClient, load_backend

    backend = load_backend(spec, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout, max_retries=max_retries)
    return LLMClient(backend, cache_dir=False if no_cache else None)


def llm_summary(client, written: int, out: Path, seconds: float, **extra) -> dict:
    """What a single-stage command wrote and the LLM calls it took."""
    return {"written": written, **client.usage_since(), "out": str(out), "seconds": round(seconds, 3), **extra}


