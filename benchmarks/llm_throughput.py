"""LLM throughput of the embedded model: queries/s and judgments/s, in process and through a local server.

Expected run time on 2 CPU cores: about 8 minutes with the defaults.

    .venv/bin/python benchmarks/llm_throughput.py [--prompts 12] [--rounds 2]

Both paths run SmolLM2-135M-Instruct (Q4_1 GGUF) on the same machine with the call cache
off: in process through llama-cpp-python, and through the ``openai`` backend against
``python -m llama_cpp.server`` on 127.0.0.1 with as many threads as the in-process model
(concurrency 1: the server decodes one request at a time). Rounds alternate which path goes first; medians are reported.
Generation: question prompts (2 few-shot turns) for SciFact passages, 48 new tokens at
most. Grading: the 0–3 graded prompt for (query, passage) pairs, one label-probability
call each. Mining: dense top-20 candidates for SciFact's 300 test queries over its 5,183
documents, with an empty and with a filled embedding cache.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402

from gradir.collections import load_collection  # noqa: E402
from gradir.retrieval.encoding import Encoder  # noqa: E402
from gradir.grading.llm import GRADES, grading_prompt  # noqa: E402
from gradir.llm import SamplingSettings, load_backend  # noqa: E402
from gradir.llm.llamacpp_backend import default_gguf_path  # noqa: E402
from gradir.retrieval.mining import mine_candidates  # noqa: E402
from gradir.synth.prompts import builtin_examples, examples_for, query_messages, query_template  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(default_gguf_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--logits_all", "true", "--model_alias", "smollm2",
         "--n_threads", str(os.cpu_count())],  # the server's default is half the cores
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("the llama.cpp server did not start")


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()

    collection = load_collection(SCIFACT)
    passages = [" ".join(d.full_text.split()[:250]) for d in list(collection.documents.values())[: args.prompts]]
    template = query_template("question")
    shots = examples_for(builtin_examples(), "question", 2)
    generation_prompts = [query_messages(template, shots, p) for p in passages]
    queries = list(collection.split_queries("test").values())[: args.prompts]
    grading_prompts = [grading_prompt(q.text, p) for q, p in zip(queries, passages)]
    settings = SamplingSettings(0.7, 0.95, 48, 0)

    local = load_backend("llamacpp")
    server, url = start_server()
    remote = load_backend(f"openai:{url}@smollm2", concurrency=1, timeout=300)
    rates: dict[str, list[float]] = {k: [] for k in ("gen_local", "gen_server", "grade_local", "grade_server")}
    try:
        for round_no in range(args.rounds):
            paths = [("local", local), ("server", remote)]
            if round_no % 2:
                paths.reverse()
            for name, backend in paths:
                rates[f"gen_{name}"].append(len(generation_prompts) / timed(lambda: backend.generate(generation_prompts, [settings] * len(generation_prompts))))
                rates[f"grade_{name}"].append(len(grading_prompts) / timed(lambda: backend.label_probabilities(grading_prompts, GRADES)))
            print(f"round {round_no + 1}: " + ", ".join(f"{k} {v[-1]:.2f}/s" for k, v in rates.items()), file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=30)
        local.close()

    test_queries = collection.split_queries("test")
    with tempfile.TemporaryDirectory() as cache:
        cold = timed(lambda: mine_candidates(test_queries, {}, collection.documents, top_k=20, encoder=Encoder(cache_dir=cache)))
        warm = timed(lambda: mine_candidates(test_queries, {}, collection.documents, top_k=20, encoder=Encoder(cache_dir=cache)))

    median = {k: statistics.median(v) for k, v in rates.items()}
    table = "\n".join([
        "| measure | in process (llamacpp) | local server (openai backend) | server / in process |",
        "|---|---|---|---|",
        f"| queries/s (generation, 48 tokens max) | {median['gen_local']:.2f} | {median['gen_server']:.2f} | {median['gen_server'] / median['gen_local']:.2f}x |",
        f"| judgments/s (label probabilities) | {median['grade_local']:.2f} | {median['grade_server']:.2f} | {median['grade_server'] / median['grade_local']:.2f}x |",
        "",
        "| mining SciFact (300 queries, 5,183 documents, dense top-20) | seconds |",
        "|---|---|",
        f"| empty embedding cache (encodes the corpus) | {cold:.1f} |",
        f"| filled embedding cache | {warm:.2f} |",
    ])
    print(table)
    if not args.no_record:
        append_section(
            "LLM throughput and mining",
            f"python benchmarks/llm_throughput.py --prompts {args.prompts} --rounds {args.rounds}",
            f"Model: SmolLM2-135M-Instruct Q4_1 GGUF; {args.prompts} prompts a round, {args.rounds} rounds, medians; "
            "call cache off.",
            table,
        )

if __name__ == "__main__":
    main()
