"""`gradir run` on collections of 100k passages and up: wall time, peak memory and disk per stage.

    python benchmarks/scale.py [--sizes 100000 300000] [--work /tmp/gradir-scale]
    python benchmarks/scale.py --sizes 100000 1000000 100000 --no-bm25-rows   # growth, drift cancelled

Collection: SciFact's 5,183 abstracts with their ids, queries and test qrels, and beside
them passages made from the shipped SciFact and NFCorpus text up to the size asked for:
each passage two random windows of 1-6 sentences of an abstract (``ann_recall.windows``,
title first) joined, distinct, drawn with one seed, so every size has the same passage
length distribution and a smaller collection's passages are the first of a larger one's
(encoding costs the same per passage at every size, and a stage's growth is its own). So
evaluation is SciFact's test split (300 queries) searched over the whole collection.

Encoder: a sentence-transformers ``StaticEmbedding`` made from all-MiniLM-L6-v2's own token
embeddings (``ann_recall.static_encoder``), saved as a model folder and given to the run
as ``model.base``: the transformer would take hours at these sizes on 2 cores, and the
stages' own overhead is what is measured here. LLM: a local OpenAI-compatible server in
this process whose answers cost nothing (a query made of the passage's words; prompt
log-probabilities for the likelihood grader from word overlap), so that what is timed is
gradir's, not a model's. The LLM stages scale with the collection: ``generate.passages``
is 1% of it.

Per size, ``gradir run`` runs in a child process; a monitor reads the child's resident
memory (``/proc``, with its children) every 0.2 s and the run's ``state.json`` to know
which stage is running. Per stage: wall seconds (from ``state.json``), peak RSS, and the
disk its outputs take; "load" is everything before the first stage (config, collection,
plan). Then the same run again with nothing changed (every stage skipped). Beside it,
"plain": the encode-and-search part done directly with sentence-transformers and FAISS
(encode the collection, exact inner-product search for the 300 queries), in its own
child process, measured the same way, at the same batch size. Last, the collection's BM25
index (mining scores each candidate with it for the grader) built from scratch by gradir,
beside it by bm25s' own ``tokenize`` + ``index``, and then loaded as the run saved it in
its cache, each in a child process (``--bm25-only``: these rows alone; ``--no-bm25-rows``:
leave them out).

Growth ratios divide the largest size's figures by the smallest's. This machine's speed
drifts by tens of percent over the half hour between two sizes, so a size can be given
twice, before and after the large one: its figures in the ratio are then the mean of both.

Memory is reported twice: peak RSS (what ``top`` shows) and peak anonymous memory, which
leaves out the resident pages of memory-mapped files (the embedding cache, a saved BM25
index): those the kernel can drop and read again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ann_recall import BEIR, WINDOWS, static_encoder, windows, with_joined_windows  # noqa: E402
from json_server import JSONServer  # noqa: E402
from results_file import append_section  # noqa: E402

WORD = re.compile(r"[A-Za-z][A-Za-z-]{3,}")
PASSAGE_IN_PROMPT = re.compile(r"Passage:\s*(.+?)(?:\n|$)", re.S)


# --- the collection -------------------------------------------------------------------

def joined_passages(limit: int) -> list[str]:
    """``limit`` distinct passages, each two sentence windows joined (seed 1): one length distribution at every size."""
    return with_joined_windows({}, windows(WINDOWS), limit)


def build_collection(root: Path, size: int) -> Path:
    """SciFact (ids, queries, test qrels) plus joined window passages up to ``size`` documents in all."""
    folder = root / f"collection-joined-{size}"
    if (folder / "corpus.jsonl").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    shutil.copy(BEIR / "scifact" / "queries.jsonl", folder / "queries.jsonl")
    shutil.copy(BEIR / "scifact" / "qrels" / "test.tsv", folder / "qrels" / "test.tsv")
    with open(BEIR / "scifact" / "corpus.jsonl", encoding="utf-8") as lines:
        scifact = [line for line in lines if line.strip()]
    extra = joined_passages(size - len(scifact))
    partial = folder / "corpus.jsonl.partial"
    with open(partial, "w", encoding="utf-8") as out:
        out.writelines(scifact)
        for i, text in enumerate(extra):
            out.write(json.dumps({"_id": f"w{i}", "title": "", "text": text}) + "\n")
    partial.rename(folder / "corpus.jsonl")
    return folder


def build_encoder(root: Path) -> Path:
    folder = root / "static-minilm"
    if not (folder / "modules.json").is_file():
        static_encoder().save(str(folder))
    return folder


# --- an LLM whose answers cost nothing --------------------------------------------------

class InstantServer(JSONServer):
    """OpenAI-compatible chat and completions answers made from the prompt's own words, at once."""

    def __init__(self) -> None:
        super().__init__(lambda path, request: completion(request) if path.endswith("/completions")
                         and "messages" not in request else chat(request))


def chat(request: dict) -> dict:
    """A query of five words from the last passage in the prompt, chosen by the request's seed."""
    text = request["messages"][-1]["content"] if isinstance(request.get("messages"), list) else ""
    found = PASSAGE_IN_PROMPT.findall(text)
    words = list(dict.fromkeys(WORD.findall(found[-1] if found else text))) or ["passage"]
    chosen = random.Random(request.get("seed", 0)).sample(words, min(5, len(words)))
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(chosen).lower() + "?"}}]}


def completion(request: dict) -> dict:
    """The prompt echoed as whitespace tokens; a token's log-probability is higher when it occurs earlier."""
    prompt = request["prompt"]
    tokens, offsets, values, seen = [], [], [], set()
    for match in re.finditer(r"\S+\s*", prompt):
        word = match.group().strip().lower()
        tokens.append(match.group())
        offsets.append(match.start())
        values.append(-0.5 if word in seen else -4.0)
        seen.add(word)
    values[0] = None  # the first token has no log-probability, as servers answer
    return {"choices": [{"index": 0, "text": "", "logprobs": {"tokens": tokens, "token_logprobs": values,
                                                              "text_offset": offsets}}]}


# --- measuring a child process ----------------------------------------------------------

def tree_rss(pid: int, field: str = "VmRSS") -> int:
    """Resident bytes of a process and its descendants (from /proc): ``VmRSS`` all of them, ``RssAnon``
    those not backed by a file (memory-mapped files, such as the embedding cache, count in VmRSS
    while their pages are resident, but the kernel can drop them)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next((int(line.split()[1]) * 1024 for line in status if line.startswith(field + ":")), 0)
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo += [int(c) for c in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def running_stage(state_path: Path) -> str:
    try:
        state = json.loads(state_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return "load"
    stages = state.get("stages", {})
    running = [name for name, entry in stages.items() if entry.get("status") == "running"]
    if running:
        return running[0]
    return "after" if stages else "load"


def children_cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def monitored(command: list[str], state_path: Path | None, env: dict[str, str]) -> tuple[float, float, dict[str, int], str]:
    """Run ``command``; wall seconds, CPU seconds (user + system, its children included), peak RSS per
    stage (and per stage + ``" anon"``, anonymous memory), and stdout."""
    start, cpu_start = time.perf_counter(), children_cpu_seconds()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    peaks: dict[str, int] = {}
    output: dict[str, str] = {}
    reader = threading.Thread(target=lambda: output.update(zip(("out", "err"), child.communicate())))
    reader.start()
    while reader.is_alive():
        stage = running_stage(state_path) if state_path else "all"
        peaks[stage] = max(peaks.get(stage, 0), tree_rss(child.pid))
        peaks[stage + " anon"] = max(peaks.get(stage + " anon", 0), tree_rss(child.pid, "RssAnon"))
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{output.get('err', '')[-3000:]}")
    return seconds, children_cpu_seconds() - cpu_start, peaks, output["out"]


def disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# --- one size ---------------------------------------------------------------------------

BATCH = 32  # texts per forward pass, gradir's default, in both gradir run and the plain row

CONFIG = """
[run]
collection = "{collection}"
cache_dir = "{cache}"
seed = 0
[model]
base = "{model}"
batch_size = {batch}
[llm]
backend = "openai:{url}@instant"
concurrency = 16
[generate]
passages = {passages}
types_per_passage = 1
[mine]
top_k = 8
[grade]
grader = "likelihood"
[train]
epochs = 1
batch_size = 32
max_steps = 20
validation_share = 0.0  # the tuned model is always the one evaluated, so evaluate re-encodes at every size
[eval]
split = "test"
"""


def pipeline_rows(size: int, work: Path, model: Path, server: InstantServer) -> list[dict]:
    from gradir.pipeline.stages import STAGES

    collection = build_collection(work, size)
    folder = work / f"run-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = folder / "gradir.toml"
    config.write_text(CONFIG.format(collection=collection, cache=folder / "cache", model=model, url=server.url,
                                    passages=max(100, size // 100), batch=BATCH), encoding="utf-8")
    out = folder / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIR_PROGRESS_SECONDS": "60"}
    command = [sys.executable, "-m", "gradir", "run", str(config), "--out", str(out), "--json"]
    seconds, cpu, peaks, stdout = monitored(command, out / "state.json", env)
    stages = json.loads(stdout)["stages"]
    state = json.loads((out / "state.json").read_text())["stages"]
    rows = [{"size": size, "part": "load", "seconds": seconds - sum(s["seconds"] for s in stages.values()),
             "cpu": cpu - sum(state[name]["cpu_seconds"] for name in stages),
             "peak_rss": peaks.get("load", 0), "peak_anon": peaks.get("load anon", 0), "disk": 0}]
    for stage in STAGES:
        rows.append({"size": size, "part": stage.name, "seconds": stages[stage.name]["seconds"],
                     "cpu": state[stage.name]["cpu_seconds"],
                     "peak_rss": peaks.get(stage.name, 0), "peak_anon": peaks.get(stage.name + " anon", 0),
                     "disk": sum(disk(out / top) for top in {Path(name).parts[0] for name in stage.outputs})})
    cache = folder / "cache"
    summary = {name: stages[name]["summary"] for name in ("generate", "filter", "grade", "evaluate")}
    ndcg = summary["evaluate"].get("ndcg@10", {})
    rows.append({"size": size, "part": "whole run", "seconds": seconds, "cpu": cpu, "peak_rss": max(peaks.values()),
                 "peak_anon": max(v for k, v in peaks.items() if k.endswith(" anon")),
                 "disk": disk(out) + disk(cache),
                 "note": f"{summary['generate'].get('written')} queries, {summary['filter'].get('written')} kept, "
                         f"{summary['grade'].get('written')} graded pairs; nDCG@10 {ndcg.get('base', 0):.4f} → "
                         f"{ndcg.get('tuned', 0):.4f}; cache: embeddings {disk(cache / 'embeddings') / 2**20:,.0f} MB, "
                         f"LLM calls {disk(cache / 'llm_calls.sqlite') / 2**20:,.1f} MB"})
    again, cpu_again, peaks_again, stdout = monitored(command, out / "state.json", env)
    assert {s["status"] for s in json.loads(stdout)["stages"].values()} == {"skipped"}
    rows.append({"size": size, "part": "rerun, nothing changed", "seconds": again, "cpu": cpu_again,
                 "peak_rss": max(peaks_again.values()),
                 "peak_anon": max(v for k, v in peaks_again.items() if k.endswith(" anon")), "disk": 0})
    return rows


PLAIN = """
import json, sys, time
import faiss, numpy as np
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
with open(sys.argv[2] + "/corpus.jsonl") as lines:
    texts = [(r.get("title", "") + " " + r.get("text", "")).strip() for r in map(json.loads, lines)]
with open(sys.argv[2] + "/qrels/test.tsv") as qrels:
    judged = {line.split("\\t")[0] for line in list(qrels)[1:]}
with open(sys.argv[2] + "/queries.jsonl") as lines:
    queries = [r["text"] for r in map(json.loads, lines) if r["_id"] in judged]
start = time.perf_counter()
vectors = model.encode(texts, batch_size=int(sys.argv[3]), normalize_embeddings=True, convert_to_numpy=True)
encoded = time.perf_counter() - start
index = faiss.IndexFlatIP(vectors.shape[1])
index.add(vectors)
found = index.search(model.encode(queries, normalize_embeddings=True, convert_to_numpy=True), 100)
print(json.dumps({"encode": encoded, "search": time.perf_counter() - start - encoded}))
"""


BM25 = """
import json, sys, time
from gradir.collections import load_collection
from gradir.retrieval.bm25 import collection_index
documents = load_collection(sys.argv[1]).documents
start = time.perf_counter()
if sys.argv[2] == "bm25s":  # bm25s' own build, for comparison: tokenize the whole collection, then index
    import bm25s, Stemmer
    texts = [d.full_text for d in documents.values()]
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)
    bm25s.BM25(k1=1.2, b=0.75, method="lucene").index(tokens, show_progress=False)
else:
    collection_index(documents, None if sys.argv[2] == "-" else sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

BM25_PARTS = {
    "-": "BM25 index built (not saved)",
    "bm25s": "BM25 index built by bm25s' own tokenize + index",
    "cache": "BM25 index loaded as the run saved it",
}


def bm25_rows(size: int, work: Path) -> list[dict]:
    """The collection's BM25 index built by gradir (as mining does the first time) and, beside
    it, by bm25s' own tokenize + index; then loaded as the run saved it (when the run has)."""
    collection, cache = build_collection(work, size), work / f"run-{size}" / "cache"
    rows = []
    for where, part in BM25_PARTS.items():
        if where == "cache" and not (cache / "bm25").is_dir():
            continue
        where = str(cache) if where == "cache" else where
        _, _, peaks, stdout = monitored([sys.executable, "-c", BM25, str(collection), where], None, dict(os.environ))
        rows.append({"size": size, "part": part, "seconds": json.loads(stdout)["seconds"], "peak_rss": peaks["all"],
                     "peak_anon": peaks["all anon"], "disk": disk(cache / "bm25") if where == str(cache) else 0,
                     "note": "seconds: the index only; memory: with the collection loaded"})
    return rows


def plain_row(size: int, work: Path, model: Path) -> dict:
    collection = build_collection(work, size)
    seconds, cpu, peaks, stdout = monitored([sys.executable, "-c", PLAIN, str(model), str(collection), str(BATCH)],
                                            None, dict(os.environ))
    parts = json.loads(stdout)
    return {"size": size, "part": "plain ST + FAISS (encode, exact search)", "seconds": seconds, "cpu": cpu,
            "peak_rss": peaks["all"], "peak_anon": peaks["all anon"], "disk": 0,
            "note": f"encode {parts['encode']:.1f} s, search {parts['search']:.1f} s"}


def render(rows: list[dict]) -> str:
    lines = ["| passages | part | seconds | CPU seconds | peak RSS (MB) | peak anonymous (MB) | disk (MB) | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cpu = f"{r['cpu']:.1f}" if "cpu" in r else ""
        lines.append(f"| {r['size']:,} | {r['part']} | {r['seconds']:.1f} | {cpu} | {r['peak_rss'] / 2**20:,.0f} | "
                     f"{r['peak_anon'] / 2**20:,.0f} | {r['disk'] / 2**20:,.1f} | {r.get('note', '')} |")
    sizes = sorted({r["size"] for r in rows})
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        runs_of_small = len({r.get("pass", 0) for r in rows if r["size"] == small})
        both = f"; the {small:,} figures are the mean of its {runs_of_small} runs, before and after" if runs_of_small > 1 else ""
        lines += ["", f"Growth from {small:,} to {large:,} passages ({large / small:.0f}× the data{both}):", "",
                  "| part | time ratio | CPU time ratio | peak RSS ratio |", "|---|---|---|---|"]
        for part in dict.fromkeys(r["part"] for r in rows):
            a, b = _mean_of(rows, small, part), _mean_of(rows, large, part)
            if a and b and a["seconds"] > 0 and a["peak_rss"] > 0:
                cpu = f"{b['cpu'] / a['cpu']:.1f}" if a.get("cpu", 0) > 0 and "cpu" in b else ""
                lines.append(f"| {part} | {b['seconds'] / a['seconds']:.1f} | {cpu} | {b['peak_rss'] / a['peak_rss']:.1f} |")
    return "\n".join(lines)


def _mean_of(rows: list[dict], size: int, part: str) -> dict | None:
    """Seconds, CPU seconds and peak RSS of one part at one size, averaged over its runs (None: not run)."""
    found = [r for r in rows if r["size"] == size and r["part"] == part]
    if not found:
        return None
    keys = ("seconds", "peak_rss", "cpu") if all("cpu" in r for r in found) else ("seconds", "peak_rss")
    return {key: sum(r[key] for r in found) / len(found) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000],
                        help="collection sizes, run in this order; a size given twice (100000 1000000 100000) "
                             "is run twice and the growth ratios use the mean of its runs, so that the machine's "
                             "drift between runs minutes apart cancels")
    parser.add_argument("--no-bm25-rows", action="store_true",
                        help="leave out the BM25 build rows beside each run (gradir's build, bm25s' own, loaded)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gradir-scale"))
    parser.add_argument("--no-record", action="store_true", help="print the table only")
    parser.add_argument("--bm25-only", action="store_true",
                        help="only the BM25 rows: gradir's build beside bm25s' own, and the saved index loaded")
    parser.add_argument("--linearity", action="store_true",
                        help="the per-passage work (encoding, BM25 build) on the smallest and largest size, "
                             "timed small, large, small in one process")
    parser.add_argument("--operations", nargs="+", choices=LINEARITY_OPERATIONS, default=list(LINEARITY_OPERATIONS),
                        help="with --linearity: which operations to time")
    args = parser.parse_args()
    if args.bm25_only:
        return bm25_only(args)
    if args.linearity:
        return linearity(args)
    args.work.mkdir(parents=True, exist_ok=True)
    model = build_encoder(args.work)
    server = InstantServer()
    rows: list[dict] = []
    try:
        for turn, size in enumerate(args.sizes):
            done = pipeline_rows(size, args.work, model, server)
            if not args.no_bm25_rows:
                done += bm25_rows(size, args.work)
            done.append(plain_row(size, args.work, model))
            rows += [{**row, "pass": turn} for row in done]
            print(render(rows), flush=True)
            (args.work / "scale.json").write_text(json.dumps(rows, indent=1))
    finally:
        server.close()
    table = render(rows)
    if not args.no_record:
        append_section(
            "A large collection through gradir run",
            f"python benchmarks/scale.py --sizes {' '.join(map(str, args.sizes))}{' --no-bm25-rows' * args.no_bm25_rows}",
            "SciFact (5,183 abstracts, its 300 test queries) plus passages of the shipped SciFact and NFCorpus "
            "text up to each size, each two random sentence windows joined (one length distribution at every size); "
            "StaticEmbedding from all-MiniLM-L6-v2's token embeddings; an instant local "
            "OpenAI-compatible LLM; generate.passages = 1% of the collection, mine.top_k 8, likelihood grader, "
            "20 training steps, no validation hold-out (the tuned model is evaluated, re-encoding the collection, "
            "at every size); model.batch_size 32 in gradir and in the plain row; exact search. Peak RSS includes child "
            "processes (the training launcher) and the resident pages of memory-mapped files (the embedding "
            "cache); peak anonymous memory leaves those out.",
            table,
        )


LINEARITY_OPERATIONS = ("encode", "bm25", "search", "cache")


def linearity(args: argparse.Namespace) -> None:
    """Growth of encoding and of the BM25 build, free of the machine's drift between two runs.

    The pipeline rows of one size and the next are measured many minutes apart, and a
    shared machine's speed drifts by tens of percent in that time. Here each operation
    runs on the first ``small`` passages, then the first ``large``, then ``small`` again,
    in one process: the growth is the large time over the mean of the two small ones.
    """
    import Stemmer

    import numpy as np

    from gradir.retrieval.bm25 import streamed_scores
    from gradir.retrieval.dense import DenseIndex
    from gradir.retrieval.embedding_cache import EmbeddingCache, text_key
    from gradir.retrieval.encoding import _CHUNK, Encoder

    small, large = min(args.sizes), max(args.sizes)
    with open(build_collection(args.work, large) / "corpus.jsonl", encoding="utf-8") as lines:
        texts = [(r.get("title", "") + " " + r.get("text", "")).strip() for r in map(json.loads, lines)]
    encoder = Encoder(build_encoder(args.work), cache_dir=False, batch_size=BATCH, show_progress=False)
    stemmer = Stemmer.Stemmer("english")
    encoded: dict[int, np.ndarray] = {}

    def encode(part: list[str]) -> None:
        encoded[len(part)] = encoder.encode_documents(part)

    def vectors_of(part: list[str]) -> np.ndarray:
        """The encoded vectors of ``part``; random unit vectors of the model's width when encoding is not timed."""
        if large not in encoded:
            drawn = np.random.default_rng(0).standard_normal((large, 384), dtype=np.float32)
            encoded[large] = drawn / np.linalg.norm(drawn, axis=1, keepdims=True)
        return encoded[large][: len(part)]

    def filter_search(part: list[str]) -> None:
        """The filter stage's search: 1% of the passages as queries (as generate.passages is here), top 10, exact."""
        vectors = vectors_of(part)
        index = DenseIndex([str(i) for i in range(len(part))], vectors)
        queries = vectors[:: 100]
        index.search([str(i) for i in range(len(queries))], queries, 10)

    def cache_round_trip(part: list[str]) -> None:
        """What the embedding cache does for a collection encoded in one go: look up (all absent), store in
        the encoder's chunks, look up again (a fresh cache folder, deleted after)."""
        folder = args.work / "linearity-cache"
        shutil.rmtree(folder, ignore_errors=True)
        cache = EmbeddingCache(folder, "timed")
        keys = [text_key(text) for text in part]
        vectors = vectors_of(part)
        assert (cache.rows_of(keys) < 0).all()
        for start in range(0, len(keys), _CHUNK):
            cache.put_many(keys[start : start + _CHUNK], vectors[start : start + _CHUNK])
        assert (cache.rows_of(keys) >= 0).all()
        cache.close()
        shutil.rmtree(folder)

    operations = {
        "encode": ("encode (gradir's Encoder, no cache)", encode),
        "bm25": ("BM25 index built (streamed_scores)", lambda part: streamed_scores(
            part, len(part), k1=1.2, b=0.75, stopwords="en", stemmer=stemmer)),
        "search": ("exact search, 1% of the passages as queries, top 10 (the filter's)", filter_search),
        "cache": ("embedding cache: hash, look up, store in chunks of 512, look up again", cache_round_trip),
    }
    if "encode" not in args.operations:
        vectors_of(texts[:large])  # drawn before the clock starts
    lines = [f"| operation | {small:,} (s) | {large:,} (s) | {small:,} again (s) | growth for {large // small}× the data |",
             "|---|---|---|---|---|"]
    for name, run in (operations[chosen] for chosen in LINEARITY_OPERATIONS if chosen in args.operations):
        seconds = []
        for size in (small, large, small):
            start = time.perf_counter()
            run(texts[:size])
            seconds.append(time.perf_counter() - start)
        growth = seconds[1] / ((seconds[0] + seconds[2]) / 2)
        lines.append(f"| {name} | {seconds[0]:.2f} | {seconds[1]:.2f} | {seconds[2]:.2f} | {growth:.2f}× |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if not args.no_record:
        append_section(
            "Growth of the per-passage work, timed in one process",
            f"python benchmarks/scale.py --linearity --sizes {small} {large}"
            + (f" --operations {' '.join(args.operations)}" if set(args.operations) != set(LINEARITY_OPERATIONS) else ""),
            "The first passages of `scale.py`'s largest collection (SciFact plus joined sentence windows), timed on "
            f"{small:,}, then {large:,}, then {small:,} again in one process, so that the machine's drift between "
            "two runs minutes apart does not enter the ratio; growth = the large time over the mean of the two "
            "small ones. Encoding: the StaticEmbedding encoder of `scale.py`, batch 32, embedding cache off. "
            "Search: gradir's exact DenseIndex over those vectors, every 100th passage's vector standing in for "
            "a generated query (the filter searches 1% of the collection's passages' queries; ten times the "
            "queries over ten times the passages, 100× the work by design; random unit vectors when encoding is "
            "not timed). Embedding cache: a fresh cache folder on the same disk, fsync-ed as gradir writes it.",
            table,
        )


def bm25_only(args: argparse.Namespace) -> None:
    rows = [row for size in args.sizes for row in bm25_rows(size, args.work)]
    table = render(rows)
    print(table, flush=True)
    if not args.no_record:
        append_section(
            "BM25 index of a large collection: gradir's chunked build beside bm25s' own",
            f"python benchmarks/scale.py --bm25-only --sizes {' '.join(map(str, args.sizes))}",
            "The collections of `scale.py` (SciFact plus joined sentence windows of SciFact and NFCorpus). Each "
            "row a child process that loads the collection (gradir's loader), then builds the index; seconds: the "
            "build only; memory: peak of the whole process, collection included. Lucene BM25, k1 1.2, b 0.75, "
            "English stop words, Snowball stemming in both builds.",
            table,
        )


if __name__ == "__main__":
    main()
