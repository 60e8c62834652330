"""What every command shares: the app, the common options, the LLM client and JSON output."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from gradir.cli.options import Options, option, section_option
from gradir.console import err_console
from gradir.errors import GradirError
from gradir.pipeline.config import LLMSection, ModelSection, Section

app = typer.Typer(
    name="gradir",
    help="Adapt text-embedding models to your own collection with synthetic data and graded labels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

COLLECTION = option("collection", Path, "--collection", "-c", help="BEIR folder (corpus, queries, qrels/).")
JSON = option("as_json", bool, "--json", default=False, help="Print one JSON object with the results on stdout.")
LENIENT = option("lenient", bool, "--lenient", default=False, help="Skip bad records and report how many and why.")
SPLIT = option("split", str, "--split", default="test", help="Which qrels split to evaluate on.")
SEED = option("seed", int, "--seed", default=0, help="Seed of sampling, shuffling and initialisation.")
INDEX = option("index", str, "--index", default="exact",
               help="Dense index: exact, hnsw, ivf or ivfpq (approximate; default parameters, see [index] in the config).")
ENCODING_RUNTIME = (
    section_option(ModelSection, "backend", str, "--backend", help="Encoding runtime: torch, onnx (ONNX Runtime) or openvino."),
    section_option(ModelSection, "precision", str, "--precision", help="Encoding precision: fp32, bf16 (torch; CPUs with AMX, GPUs from Ampere on), or int8 (onnx, openvino)."),
)
LLM_CONNECTION = (
    option("llm", str, "--llm", default="llamacpp", help="llamacpp[:GGUF], openai:URL@MODEL, hf:PATH or vllm:PATH."),
    option("no_cache", bool, "--no-cache", default=False, help="Neither read nor write the LLM call cache."),
    section_option(LLMSection, "api_key_env", str, "--api-key-env", help="Environment variable holding the API key (openai backend)."),
    section_option(LLMSection, "concurrency", int, "--concurrency", min=1),
    section_option(LLMSection, "timeout", float, "--timeout", min=0.1),
    section_option(LLMSection, "max_retries", int, "--max-retries", min=0),
)


def emit(result: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")


def say(options: Options, summary: dict, message: str) -> None:
    """A command's result: the summary as JSON with ``--json``, else one line on stderr."""
    if options.as_json:
        emit(summary, True)
    else:
        err_console.print(message)


def timed(stage: Callable[[], dict], out: Path) -> dict:
    """Run a stage function; its summary with the output path and the seconds it took."""
    start = time.perf_counter()
    summary = stage()
    return {**summary, "out": str(out), "seconds": round(time.perf_counter() - start, 3)}


def section_from(section: type[Section], **values: Any) -> Any:
    """A config section built from a command's options; a value it refuses is an error naming the option."""
    try:
        return section(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        flag = "--" + str(error["loc"][0]).replace("_", "-")
        raise GradirError(f"{flag}: {error['msg']} (got {error.get('input')!r})") from None


def check_retriever(retriever: str) -> str:
    from gradir.retrieval.search import RETRIEVERS

    if retriever not in RETRIEVERS:
        raise GradirError(f"--retriever: unknown retriever '{retriever}' (choose from {', '.join(RETRIEVERS)})")
    return retriever


def approximate_search(kind: str):
    """The ``--index`` option as the dense index's settings."""
    from gradir.retrieval.dense import INDEX_KINDS, ApproximateSearch

    if kind not in INDEX_KINDS:
        raise GradirError(f"--index: unknown index '{kind}' (choose from {', '.join(INDEX_KINDS)})")
    return ApproximateSearch(kind=kind)


def llm_client(options: Options):
    """The ``LLM_CONNECTION`` options as a client (cached unless ``--no-cache``)."""
    from gradir.llm import LLMClient, load_backend

    backend = load_backend(options.llm, api_key_env=options.api_key_env, concurrency=options.concurrency,
                           timeout=options.timeout, max_retries=options.max_retries)
    return LLMClient(backend, cache_dir=False if options.no_cache else None)
