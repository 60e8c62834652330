"""Query-likelihood scoring throughput: pairs per second, shipped GGUF weights against the F16 copy.

Each round scores the same (query, passage) pairs once per variant, in a rotated order,
with no call cache, so every pair is a fresh llama.cpp call. The pairs are SciFact test
queries, each with distinct corpus passages (no passage is shared between pairs: the
worst case for prefix reuse, as when reranking a retriever's top 10). A variant is
``WEIGHTS:PASSAGE_TOKENS`` with WEIGHTS ``shipped`` (the package's quantised file as is)
or ``f16`` (what ``llamacpp`` / ``llamacpp:NAME`` load: the copy made by
:func:`gradir.llm.llamacpp_backend.f16_copy`). The table gives the median over rounds of
pairs/s and of the per-round ratio to the first variant with the same passage length.

Expected run time on 2 CPU cores: about 2 minutes per round for the defaults.

    .venv/bin/python benchmarks/scoring_throughput.py [--model smollm2-135m] [--pairs 40] [--rounds 3]
        [--variants shipped:256 f16:256 shipped:128 f16:128]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gradir.collections import load_collection  # noqa: E402
from gradir.grading.likelihood import query_likelihoods  # noqa: E402
from gradir.llm import LLMClient  # noqa: E402
from gradir.llm.llamacpp_backend import LlamaCppBackend, default_gguf_path, f16_copy, gemma3_270m_path  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "beir"
SHIPPED = {"smollm2-135m": default_gguf_path, "gemma3-270m": gemma3_270m_path}


def scoring_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` (query, passage) pairs from SciFact's test queries, every passage distinct."""
    collection = load_collection(DATA / "scifact")
    rng = random.Random(seed)
    query_ids = sorted(collection.qrels("test"))
    document_ids = rng.sample(sorted(collection.documents), count)
    pairs = []
    for i, doc_id in enumerate(document_ids):
        query = collection.queries[query_ids[i % len(query_ids)]]
        pairs.append((query.text, collection.documents[doc_id].full_text))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(SHIPPED), default="smollm2-135m")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["shipped:256", "f16:256", "shipped:128", "f16:128"])
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    shipped = SHIPPED[args.model]()
    files = {"shipped": shipped, "f16": f16_copy(shipped)}
    clients = {w: LLMClient(LlamaCppBackend(path), cache_dir=False, show_progress=False) for w, path in files.items()}
    pairs = scoring_pairs(args.pairs)
    rates: dict[str, list[float]] = {v: [] for v in args.variants}
    for round_index in range(args.rounds):
        shift = round_index % len(args.variants)
        for variant in args.variants[shift:] + args.variants[:shift]:
            weights, tokens = variant.split(":")
            start = time.perf_counter()
            scores = query_likelihoods(pairs, clients[weights], max_passage_tokens=int(tokens))
            rates[variant].append(len(pairs) / (time.perf_counter() - start))
            failed = sum(score is None for score, _ in scores)
            print(f"round {round_index + 1} {variant}: {rates[variant][-1]:.2f} pairs/s ({failed} failed)",
                  file=sys.stderr, flush=True)
    for client in clients.values():
        client.close()

    rows = []
    for variant in args.variants:
        tokens = variant.split(":")[1]
        reference = next(v for v in args.variants if v.split(":")[1] == tokens)
        ratios = [a / b for a, b in zip(rates[variant], rates[reference])]
        rows.append(f"| {args.model} | {variant.split(':')[0]} ({files[variant.split(':')[0]].name}) | {tokens} "
                    f"| {statistics.median(rates[variant]):.2f} | {statistics.median(ratios):.2f}x vs {reference} |")
    table = "\n".join([
        "| model | weights (file) | passage tokens | pairs/s (median) | speed-up (median of per-round ratios) |",
        "|---|---|---|---|---|",
        *rows,
    ])
    print(table)
    if not args.no_record:
        append_section(
            "Query-likelihood scoring throughput",
            "python benchmarks/scoring_throughput.py " + " ".join(sys.argv[1:]),
            f"{args.pairs} SciFact (test query, distinct passage) pairs, no call cache, {args.rounds} rounds in "
            "rotated order; llama.cpp in process, all cores.",
            table,
        )


if __name__ == "__main__":
    main()
