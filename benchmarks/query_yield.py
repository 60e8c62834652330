"""Query generation yield of the embedded LLM: slots filled and LLM calls per written query.

Expected run time on 2 CPU cores: about 8 minutes with the defaults.

    .venv/bin/python benchmarks/query_yield.py [--collection scifact] [--passages 40] [--seed 0]

``gradir.synth.queries.generate_queries`` with the pipeline's defaults (every query type,
one query per passage and type, 6 attempts, 2 few-shot examples) on ``--passages``
passages sampled with the seed, the call cache off so that every call is made. A slot is
one (passage, type); it is filled when an answer passes the filters (after the length
fitting that cuts an over-long answer to its first sentence or clauses). The table gives
slots filled, calls per written query, answers shortened, and the rejections by reason.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gradir.collections import load_collection  # noqa: E402
from gradir.llm import LLMClient, load_backend  # noqa: E402
from gradir.synth.queries import generate_queries  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "beir"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", default="scifact")
    parser.add_argument("--passages", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", default="llamacpp")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    collection = load_collection(DATA / args.collection)
    client = LLMClient(load_backend(args.llm), cache_dir=False, show_progress=False)
    start = time.perf_counter()
    result = generate_queries(collection.documents, client, max_docs=args.passages, seed=args.seed)
    seconds = time.perf_counter() - start
    calls = client.counts.llm_calls
    written = len(result.queries)
    by_type = {t: sum(q.type == t for q in result.queries) for t in dict.fromkeys(q.type for q in result.queries)}
    rejected = ", ".join(f"{reason} {count}" for reason, count in result.rejected.most_common()) or "none"
    failures = sum(result.failures.values())
    client.close()
    table = "\n".join([
        "| collection | LLM | passages | slots | filled | share filled | LLM calls | calls per written query "
        "| shortened to fit | rejections by reason | failed calls | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {args.collection} | {client.model_id} | {result.passages} | {result.slots} | {written} "
        f"| {written / result.slots:.1%} | {calls} | {calls / max(written, 1):.2f} | {result.shortened} "
        f"| {rejected} | {failures} | {seconds / 60:.1f} |",
    ])
    print(table)
    print("written per type: " + ", ".join(f"{t} {n}" for t, n in by_type.items()), file=sys.stderr)
    if not args.no_record:
        append_section(
            "Query generation yield",
            "python benchmarks/query_yield.py " + " ".join(sys.argv[1:]),
            f"{args.passages} passages sampled with seed {args.seed}, every query type, one query per passage and "
            "type, 6 attempts, call cache off. Written per type: "
            + ", ".join(f"{t} {n}" for t, n in by_type.items()) + ".",
            table,
        )


if __name__ == "__main__":
    main()
