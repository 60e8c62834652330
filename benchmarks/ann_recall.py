"""Approximate dense search against exact: recall@100 and speed, on collections of 100k+ passages.

    python benchmarks/ann_recall.py [--sizes 100000 300000] [--indexes ivf ivfpq]

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

Per size: one exact, one HNSW, two IVF (4√N and N/1000 cells) and one IVF-PQ index
(``--indexes`` picks among the approximate ones) are built, and each approximate one is
searched at several ``ef_search`` / ``nprobe`` / ``refine_factor``. The encoded vectors
are kept in ``--work`` so a second run does not encode again. Per row: build seconds (of the index the
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
import statistics
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from gradir.models import resolve_model_path  # noqa: E402
from gradir.retrieval.dense import ApproximateSearch, DenseIndex  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BEIR = ROOT.parent / "shared" / "data" / "beir"
COLLECTIONS = ("scifact", "nfcorpus")
WINDOWS = 363_393  # distinct sentence windows of the shipped SciFact and NFCorpus text


def built(size: int) -> dict[str, ApproximateSearch]:
    """The indexes built at one size: exact, HNSW, IVF with 4√N cells (gradir's default) and with N/1000, IVF-PQ."""
    return {"exact": ApproximateSearch(), "hnsw": ApproximateSearch(kind="hnsw"), "ivf": ApproximateSearch(kind="ivf"),
            "ivf-coarse": ApproximateSearch(kind="ivf", ivf_lists=max(16, size // 1000)),
            "ivfpq": ApproximateSearch(kind="ivfpq")}


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
    "ivfpq (4√N cells, d/2 4-bit codes, nprobe 256, refine 8·k)": ("ivfpq", {"nprobe": 256}),
    "ivfpq (4√N cells, d/2 4-bit codes, nprobe 512, refine 8·k)": ("ivfpq", {"nprobe": 512}),
    "ivfpq (4√N cells, d/2 4-bit codes, nprobe 512, refine 16·k)": ("ivfpq", {"nprobe": 512, "refine_factor": 16}),
    "ivfpq (4√N cells, d/2 4-bit codes, nprobe 1024, refine 8·k)": ("ivfpq", {"nprobe": 1024}),
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
    return with_joined_windows(dict.fromkeys(found), found, limit)


def with_joined_windows(chosen: dict[str, None], found: list[str], limit: int) -> list[str]:
    """``chosen`` topped up to ``limit`` distinct passages, each two random windows of ``found`` joined (seed 1)."""
    draw = random.Random(1)
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


def encoded(queries: list[str], size: int, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """The queries' and the first ``size`` passages' vectors, encoded once and kept in ``work`` (``.npy``)."""
    work.mkdir(parents=True, exist_ok=True)
    paths = work / f"queries-{len(queries)}.npy", work / f"passages-{size}.npy"
    if all(path.is_file() for path in paths):
        return np.load(paths[0]), np.load(paths[1])
    encoder = static_encoder()
    query_vectors = encoder.encode(queries, batch_size=1024, normalize_embeddings=True, convert_to_numpy=True)
    start = time.perf_counter()
    vectors = encoder.encode(passages(size), batch_size=4096, normalize_embeddings=True, convert_to_numpy=True)
    print(f"{size} passages encoded in {time.perf_counter() - start:.0f} s", flush=True)
    for path, array in zip(paths, (query_vectors, vectors)):
        np.save(path.with_suffix(".partial.npy"), array.astype(np.float32))
        path.with_suffix(".partial.npy").rename(path)
    return query_vectors, vectors


def recall(exact: dict[str, dict[str, float]], found: dict[str, dict[str, float]], k: int) -> float:
    def top(run: dict[str, float]) -> set[str]:
        return set(sorted(run, key=run.get, reverse=True)[:k])

    return float(np.mean([len(top(exact[q]) & top(found[q])) / len(top(exact[q])) for q in exact]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--indexes", nargs="+", choices=[k for k in built(1) if k != "exact"],
                        help="the approximate indexes to build (default: all); exact search always runs")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "ann_recall",
                        help="where the encoded vectors are kept between runs (delete to encode again)")
    parser.add_argument("--repeats", type=int, default=1, help="search each setting this many times; the median is shown")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    queries = test_queries()
    query_ids = [f"q{i}" for i in range(len(queries))]
    query_vectors, vectors = encoded(queries, max(args.sizes), args.work)
    rows = []
    for size in args.sizes:
        ids = [f"p{i}" for i in range(size)]
        indexes: dict[str, tuple[DenseIndex, float]] = {}
        settings_of = {kind: settings for kind, settings in built(size).items()
                       if kind == "exact" or args.indexes is None or kind in args.indexes}
        for kind, settings in settings_of.items():
            start = time.perf_counter()
            indexes[kind] = (DenseIndex(ids, vectors[:size], settings), time.perf_counter() - start)
            print(f"{size}: {kind} built in {indexes[kind][1]:.0f} s", flush=True)
        exact_run = None
        for name, (kind, at) in SEARCHED.items():
            if kind not in indexes:
                continue
            index, build_seconds = indexes[kind]
            index.settings = replace(settings_of[kind], **at)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                run = index.search(query_ids, query_vectors, top_k=100)
                times.append(time.perf_counter() - start)
            searched = statistics.median(times)
            exact_run = exact_run or run
            rows.append({"size": size, "index": name, "build_s": build_seconds, "search_s": searched,
                         "recall@100": recall(exact_run, run, 100), "recall@10": recall(exact_run, run, 10)})
            print(rows[-1], flush=True)
    table = render(rows, len(queries))
    print(table)
    if not args.no_record:
        append_section(
            "Approximate dense search: recall against exact",
            "python benchmarks/ann_recall.py" + (f" --sizes {' '.join(map(str, args.sizes))}" if args.sizes != [100_000, 300_000] else "")
            + (f" --indexes {' '.join(args.indexes)}" if args.indexes else "") + (f" --repeats {args.repeats}" if args.repeats > 1 else ""),
            f"Data: passages of 1-6 sentences cut from the shipped SciFact and NFCorpus abstracts; {len(queries)} test "
            "queries of both; vectors from a StaticEmbedding of all-MiniLM-L6-v2's token embeddings (384 dimensions). "
            + (f"Search times are the median of {args.repeats} runs" if args.repeats > 1 else "Times are one run each")
            + f", side by side in one process, FAISS on {faiss.omp_get_max_threads()} thread(s).",
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
