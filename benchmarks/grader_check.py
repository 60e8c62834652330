"""Graders against human judgments: reranking the base top 10, pairwise accuracy, throughput.

Expected run time on 2 CPU cores: about 35 s per 100 scored pairs per variant with
the embedded SmolLM2-135M (F16 copy) at 128 passage tokens, 65 s at 256, so about 20
minutes per variant on a whole test split (``--queries 0``: SciFact 300 queries,
NFCorpus 323, 10 pairs each) and a few minutes for the defaults (30 queries). Finished variants are kept in the LLM call cache (``--cache``), so a
rerun scores nothing twice.

    .venv/bin/python benchmarks/grader_check.py [--collections scifact nfcorpus] [--queries 30]
        [--variants likelihood:smollm2-135m:256 likelihood:gemma3-270m:256 llm:smollm2-135m:400]

A variant is ``GRADER:MODEL:PASSAGE_TOKENS[:PROMPT]``: GRADER ``likelihood`` or ``llm``
(grade tokens), MODEL a named GGUF (``smollm2-135m``, ``gemma3-270m``), PROMPT
``instruction`` (the shipped prompt) or ``plain`` (no instruction line). Each variant
is checked on the same sampled queries with :func:`gradir.grading.check.check_against_qrels`;
the table gives nDCG@10 of the base order and of the reranked order with the paired
randomisation test, pairwise accuracy, and scored pairs per second (fresh calls only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gradir.collections import load_collection  # noqa: E402
from gradir.retrieval.encoding import Encoder  # noqa: E402
from gradir.grading.check import check_against_qrels  # noqa: E402
from gradir.grading.grade import grade_pairs  # noqa: E402
from gradir.llm import LLMClient, load_backend  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "beir"
PROMPTS = {
    "instruction": None,  # the shipped prompts/grading/likelihood.txt
    "plain": "Passage: {passage}\nQuestion: {query}",
}


def grader_for(variant: str, client: LLMClient, documents: dict):
    kind, _, tokens, *rest = variant.split(":")
    template = PROMPTS[rest[0] if rest else "instruction"]
    return lambda pairs: grade_pairs(pairs, documents, kind, client=client, max_passage_tokens=int(tokens),
                                     likelihood_prompt=template)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="+", default=["scifact", "nfcorpus"])
    parser.add_argument("--queries", type=int, default=30, help="judged test queries sampled per collection; 0: all")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--variants", nargs="+",
                        default=["likelihood:smollm2-135m:256", "likelihood:gemma3-270m:256", "llm:smollm2-135m:400"])
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "work" / "grader_check_cache")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    rows = []
    for name in args.collections:
        collection = load_collection(DATA / name)
        for variant in args.variants:
            model = variant.split(":")[1]
            client = LLMClient(load_backend(f"llamacpp:{model}"), cache_dir=args.cache, show_progress=False)
            start = time.perf_counter()
            grader = grader_for(variant, client, collection.documents)
            result = check_against_qrels(collection, "test", grader, queries=args.queries or 10**9,
                                         top_k=args.top_k, encoder=Encoder(show_progress=False))
            seconds = time.perf_counter() - start
            calls = client.counts.llm_calls
            client.close()
            test = result["rerank_test"]
            pairwise = result["pairwise_accuracy"]
            rows.append(
                f"| {name} | {variant} | {result['queries']} | {result['ndcg@10_base']:.4f} | {result['ndcg@10_reranked']:.4f} "
                f"| {test['delta']:+.4f} | {test['p_randomization']:.3g} | {test['wins']}/{test['losses']} "
                f"| {result['ndcg@10_fused']:.4f} | {result['fused_test']['delta']:+.4f} | {result['fused_test']['p_randomization']:.3g} "
                f"| {_acc(pairwise['vs_unjudged'])} | {_acc(pairwise['vs_judged_nonrelevant'])} "
                f"| {calls / seconds if calls else float('nan'):.2f} |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
    table = "\n".join([
        "| collection | variant | queries | nDCG@10 base | nDCG@10 reranked | Δ | p (randomisation) | wins/losses "
        "| nDCG@10 fused with base | Δ | p | pairwise acc. vs unjudged | vs judged non-relevant | scored pairs/s (fresh) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])
    print(table)
    if not args.no_record:
        append_section(
            "Graders against human judgments: reranking the base top 10",
            "python benchmarks/grader_check.py " + " ".join(sys.argv[1:]),
            f"Test split, {f'{args.queries} sampled judged queries' if args.queries else 'every judged query'} per "
            "collection (seed 0), all-MiniLM-L6-v2's top "
            f"{args.top_k}; variant = grader:model:passage tokens[:prompt]. Pairs/s counts fresh LLM calls only.",
            table,
        )


def _acc(entry: dict) -> str:
    return "–" if entry["accuracy"] is None else f"{entry['accuracy']:.3f} ({entry['pairs']})"


if __name__ == "__main__":
    main()
