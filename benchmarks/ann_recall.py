"""Approximate dense search against exact: recall@100 and speed, on collections of 100k+ passages.

    python benchmarks/ann_recall.py [--sizes 100000 300000] [--queries 623]

Passages: the shipped SciFact and NFCorpus abstracts (8,816 documents) cut into
sentences, every window of 1 to 6 consecutive sentences of a document one passage with
the document's title in front, deduplicated and shuffled (seed 0); a size takes the
first N. There are 363,393 such windows; beyond them (1M) a passage is two random
windows joined (seed 1). Queries: both collections' test queries (300 + 323). Encoder: a
sentence-transformers ``StaticEmbedding`` made from all-MiniLM-L6-v2's own token
embeddings (mean of the tokens' input vectors, unit length): fast enough to embed 300k
passages on 2 cores in a minute, and its vectors cluster by topic as real embeddings do,
which is what an approximate index's recall depends on. (The transformer itself would
take hours on 2 cores at these sizes.)

Per size: one exact, one HNSW and one IVF index are built, and each approximate one is
searched at several ``ef_search`` / ``nprobe``. Per row: build seconds (of the index the
row searches), search seconds for all queries at k = 100, recall@100
(the share of exact search's top 100 the index returns, averaged over queries) and
recall@10. Exact search is FAISS' ``IndexFlatIP``; the others are gradir's
``[index]`` settings (:mod:`gradir.retrieval.dense`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from gradir.models import resolve_model_path  # noqa: E402
from gradir.retrieval.dense import ApproximateSearch, DenseIndex  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BEIR = ROOT.parent / "shared" / "data" / "beir"
COLLECTIONS = ("scifact", "nfcorpus")
WINDOWS = 363_393  # distinct sentence windows of the shipped SciFact and NFCorpus text


def built(size: int) -> dict[str, ApproximateSearch]:
    """The indexes built at one size: exact, HNSW, IVF with 4√N cells (gradir's default) and with N/1000."""
    return {"exact": ApproximateSearch(), "hnsw": ApproximateSearch(kind="hnsw"), "ivf": ApproximateSearch(kind="ivf"),
            "ivf-coarse": ApproximateSearch(kind="ivf", ivf_lists=max(16, size // 1000))}


SEARCHED = {  # label: (built index, search-time setting)
    "exact": ("exact", {}),
    "hnsw (m 32, ef_search 128)": ("hnsw", {"ef_search": 128}),
    "hnsw (m 32, ef_search 256)": ("hnsw", {"ef_search": 256}),
    "hnsw (m 32, ef_search 512)": ("hnsw", {"ef_search": 512}),
    "hnsw (m 32, ef_search 1024)": ("hnsw", {"ef_search": 1024}),
    "ivf (4√N cells, nprobe 16)": ("ivf", {"nprobe": 16}),
    "ivf (4√N cells, nprobe 64)": ("ivf", {"nprobe": 64}),
    "ivf (4√N cells, nprobe 256)": ("ivf", {"nprobe": 256}),
    "ivf (N/1000 cells, nprobe 16)": ("ivf-coarse", {"nprobe": 16}),
    "ivf (N/1000 cells, nprobe 32)": ("ivf-coarse", {"nprobe": 32}),
    "ivf (N/1000 cells, nprobe 64)": ("ivf-coarse", {"nprobe": 64}),
}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def passages(limit: int) -> list[str]:
    """``limit`` distinct passages: sentence windows first, then two windows joined.

    The shipped text gives 363,393 distinct windows; past that (1M passages), a passage
    is two random windows (seeded) joined, so it still reads as the collections' text.
    """
    found = windows(min(limit, WINDOWS))
    if limit <= len(found):
        return found
    chosen, draw = dict.fromkeys(found), random.Random(1)
    while len(chosen) < limit:
        chosen.setdefault(f"{draw.choice(found)} {draw.choice(found)}", None)
    return list(chosen)


def windows(limit: int) -> list[str]:
    """Windows of 1-6 sentences of every shipped document, title first, deduplicated and shuffled."""
    seen: dict[str, None] = {}
    for name in COLLECTIONS:
        with open(BEIR / name / "corpus.jsonl", encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                sentences = [s for s in SENTENCE_END.split(record.get("text", "")) if s.strip()]
                for width in range(1, 7):
                    for start in range(0, max(1, len(sentences) - width + 1)):
                        seen.setdefault(f"{record.get('title', '')}. {' '.join(sentences[start:start + width])}", None)
    texts = list(seen)
    random.Random(0).shuffle(texts)
    if len(texts) < limit:
        raise SystemExit(f"only {len(texts)} distinct passages can be made; ask for fewer")
    return texts[:limit]


def test_queries() -> list[str]:
    texts = []
    for name in COLLECTIONS:
        with open(BEIR / name / "qrels" / "test.tsv", encoding="utf-8") as qrels:
            judged = {line.split("\t")[0] for line in list(qrels)[1:]}
        with open(BEIR / name / "queries.jsonl", encoding="utf-8") as lines:
            texts += [r["text"] for r in map(json.loads, lines) if r["_id"] in judged]
    return texts


def static_encoder():
    """all-MiniLM-L6-v2's input token embeddings as a bag-of-tokens sentence encoder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer

    path = resolve_model_path(None)
    weights = SentenceTransformer(str(path), device="cpu")[0].auto_model.embeddings.word_embeddings.weight
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights.detach().numpy())], device="cpu")


def recall(exact: dict[str, dict[str, float]], found: dict[str, dict[str, float]], k: int) -> float:
    def top(run: dict[str, float]) -> set[str]:
        return set(sorted(run, key=run.get, reverse=True)[:k])

    return float(np.mean([len(top(exact[q]) & top(found[q])) / len(top(exact[q])) for q in exact]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    encoder = static_encoder()
    queries = test_queries()
    query_ids = [f"q{i}" for i in range(len(queries))]
    query_vectors = encoder.encode(queries, batch_size=1024, normalize_embeddings=True, convert_to_numpy=True)
    texts = passages(max(args.sizes))
    start = time.perf_counter()
    vectors = encoder.encode(texts, batch_size=4096, normalize_embeddings=True, convert_to_numpy=True)
    print(f"{len(texts)} passages encoded in {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for size in args.sizes:
        ids = [f"p{i}" for i in range(size)]
        indexes: dict[str, tuple[DenseIndex, float]] = {}
        settings_of = built(size)
        for kind, settings in settings_of.items():
            start = time.perf_counter()
            indexes[kind] = (DenseIndex(ids, vectors[:size], settings), time.perf_counter() - start)
            print(f"{size}: {kind} built in {indexes[kind][1]:.0f} s", flush=True)
        exact_run = None
        for name, (kind, at) in SEARCHED.items():
            index, build_seconds = indexes[kind]
            index.settings = replace(settings_of[kind], **at)
            start = time.perf_counter()
            run = index.search(query_ids, query_vectors, top_k=100)
            searched = time.perf_counter() - start
            exact_run = exact_run or run
            rows.append({"size": size, "index": name, "build_s": build_seconds, "search_s": searched,
                         "recall@100": recall(exact_run, run, 100), "recall@10": recall(exact_run, run, 10)})
            print(rows[-1], flush=True)
    table = render(rows, len(queries))
    print(table)
    if not args.no_record:
        append_section(
            "Approximate dense search: recall against exact",
            "python benchmarks/ann_recall.py" + (f" --sizes {' '.join(map(str, args.sizes))}" if args.sizes != [100_000, 300_000] else ""),
            f"Data: passages of 1-6 sentences cut from the shipped SciFact and NFCorpus abstracts; {len(queries)} test "
            "queries of both; vectors from a StaticEmbedding of all-MiniLM-L6-v2's token embeddings (384 dimensions). "
            "Times are one run each, side by side in one process.",
            table,
        )


def render(rows: list[dict], queries: int) -> str:
    exact = {r["size"]: r["search_s"] for r in rows if r["index"] == "exact"}
    lines = [f"| passages | index | build s | search s ({queries} queries, k 100) | search speed-up vs exact | recall@100 | recall@10 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']:,} | {r['index']} | {r['build_s']:.1f} | {r['search_s']:.2f} "
                     f"| {exact[r['size']] / r['search_s']:.1f}x | {r['recall@100']:.3f} | {r['recall@10']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
