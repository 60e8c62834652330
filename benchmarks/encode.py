"""Encoding speed of gradir against plain sentence-transformers, and the cached re-evaluation speed-up.

Expected run time on 2 CPU cores: about 12 minutes (3 rounds of 600 documents with
each encoder, then a cold and a warm evaluation of SciFact's 5,183 documents).

    .venv/bin/python benchmarks/encode.py [--docs 600] [--rounds 3] [--collection DIR]

Part 1 encodes the same SciFact documents with ``SentenceTransformer.encode`` and with
gradir's ``Encoder`` (a fresh, empty cache each round, so gradir pays for hashing and
cache writes), alternating which goes first, and reports the median of the per-round
ratios. Part 2 evaluates the default model on SciFact test with an empty cache, then
again in process and through the CLI with the cache filled.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sentence_transformers import SentenceTransformer  # noqa: E402

from gradir.collections import load_collection  # noqa: E402
from gradir.encoding import Encoder  # noqa: E402
from gradir.evaluation import evaluate  # noqa: E402
from gradir.models import default_model_path  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def encoding_rounds(texts: list[str], rounds: int) -> list[tuple[float, float]]:
    """(plain docs/s, gradir docs/s) per round, on the same texts."""
    plain = SentenceTransformer(str(default_model_path()))
    results = []
    for round_no in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            encoder = Encoder(cache_dir=cache, show_progress=False)
            encoder.model  # load outside the timing, as `plain` is
            timings = {}
            order = ["plain", "gradir"] if round_no % 2 == 0 else ["gradir", "plain"]
            for name in order:
                start = time.perf_counter()
                if name == "plain":
                    plain.encode(texts, batch_size=32, normalize_embeddings=True)
                else:
                    encoder.encode_documents(texts)
                timings[name] = time.perf_counter() - start
        results.append((len(texts) / timings["plain"], len(texts) / timings["gradir"]))
        print(f"round {round_no + 1}: plain {results[-1][0]:.1f} docs/s, gradir {results[-1][1]:.1f} docs/s", file=sys.stderr)
    return results


def cached_evaluation(collection_dir: Path) -> dict[str, float]:
    collection = load_collection(collection_dir)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        cold = evaluate(collection, encoder=Encoder(cache_dir=cache))
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = evaluate(collection, encoder=Encoder(cache_dir=cache))
        warm_s = time.perf_counter() - start
        assert warm.metrics == cold.metrics and warm.encoded_texts == 0
        start = time.perf_counter()
        cli = subprocess.run(
            [sys.executable, "-m", "gradir", "eval", "--collection", str(collection_dir), "--json"],
            env={**os.environ, "GRADIR_CACHE_DIR": cache},
            capture_output=True,
            text=True,
            check=True,
        )
        cli_s = time.perf_counter() - start
        assert json.loads(cli.stdout)["encoded_texts"] == 0
    return {"cold_s": cold_s, "warm_s": warm_s, "cli_warm_s": cli_s, "ndcg@10": cold.metrics["ndcg@10"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, default=ROOT.parent / "shared" / "data" / "beir" / "scifact")
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()

    collection = load_collection(args.collection)
    texts = [doc.full_text for doc in list(collection.documents.values())[: args.docs]]
    rounds = encoding_rounds(texts, args.rounds)
    ratios = [g / p for p, g in rounds]
    evaluation = cached_evaluation(args.collection)

    table = "\n".join(
        [
            "| measure | value |",
            "|---|---|",
            f"| plain ST encode, docs/s (median of {args.rounds}) | {statistics.median(p for p, _ in rounds):.1f} |",
            f"| gradir Encoder, empty cache, docs/s (median) | {statistics.median(g for _, g in rounds):.1f} |",
            f"| gradir / plain, median of per-round ratios | {statistics.median(ratios):.3f} |",
            f"| SciFact eval, empty cache (s) | {evaluation['cold_s']:.1f} |",
            f"| SciFact eval, cache filled, in process (s) | {evaluation['warm_s']:.2f} |",
            f"| SciFact eval, cache filled, `gradir eval` CLI incl. start-up (s) | {evaluation['cli_warm_s']:.2f} |",
            f"| cached speed-up, in process | {evaluation['cold_s'] / evaluation['warm_s']:.1f}x |",
            f"| cached speed-up, CLI | {evaluation['cold_s'] / evaluation['cli_warm_s']:.1f}x |",
            f"| nDCG@10 (both runs) | {evaluation['ndcg@10']:.4f} |",
        ]
    )
    print(table)
    if not args.no_record:
        append_section(
            "Encoding and cached evaluation",
            f"python benchmarks/encode.py --docs {args.docs} --rounds {args.rounds}",
            f"Texts: the first {args.docs} SciFact documents (title + text, max 256 tokens).",
            table,
        )

if __name__ == "__main__":
    main()
