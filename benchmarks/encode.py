"""Encoding speed and quality of each runtime (PyTorch fp32 and bf16; ONNX Runtime, OpenVINO; fp32, int8).

Expected run time on 2 CPU cores: about 70 minutes (3 rounds of 600 documents with
each of seven encoders; a full SciFact and NFCorpus test evaluation with each of six
runtimes; a cold and a warm cached evaluation of SciFact).

    .venv/bin/python benchmarks/encode.py [--docs 600] [--rounds 3] [--skip-quality] [--skip-cached]

Part 1 encodes the same SciFact documents with plain ``SentenceTransformer.encode`` (fp32
PyTorch, the reference) and with gradir's ``Encoder`` under each runtime (a fresh, empty
embedding cache each round, so gradir pays for hashing and cache writes; the export is
made before the rounds and timed on its own). The order of the encoders rotates every
round; the table gives the median docs/s and the median of the per-round ratios to plain
ST, the figure that survives a noisy machine. Part 2 evaluates each runtime on the full
SciFact and NFCorpus test splits (nDCG@10 and its difference to fp32 PyTorch). Part 3
evaluates the default model on SciFact with an empty cache, then again in process and
through the CLI with the cache filled.
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
from gradir.retrieval.encoding import Encoder  # noqa: E402
from gradir.evaluation import evaluate  # noqa: E402
from gradir.models import default_model_path  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "beir"
RUNTIMES = [("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8")]


def runtime_name(backend: str, precision: str) -> str:
    return f"gradir {backend} {precision}"


def encoding_rounds(texts: list[str], rounds: int, exports: Path) -> tuple[dict[str, list[float]], dict[str, float]]:
    """docs/s per encoder and round, and the seconds each runtime's export (and load) took."""
    plain = SentenceTransformer(str(default_model_path()), device="cpu")
    load_seconds = {}
    for backend, precision in RUNTIMES:  # export once, outside the timed rounds
        start = time.perf_counter()
        Encoder(cache_dir=exports, backend=backend, precision=precision, show_progress=False).model
        load_seconds[runtime_name(backend, precision)] = time.perf_counter() - start
    names = ["plain ST torch fp32", *(runtime_name(b, p) for b, p in RUNTIMES)]
    speeds: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(rounds):
        order = names[round_no % len(names):] + names[: round_no % len(names)]
        for name in order:
            with tempfile.TemporaryDirectory() as cache:
                if name.startswith("plain"):
                    start = time.perf_counter()
                    plain.encode(texts, batch_size=32, normalize_embeddings=True)
                else:
                    _, backend, precision = name.split()
                    encoder = Encoder(cache_dir=cache, exports_dir=exports, backend=backend, precision=precision,
                                      show_progress=False)
                    encoder.model  # loaded outside the timing, as `plain` is
                    start = time.perf_counter()
                    encoder.encode_documents(texts)
                speeds[name].append(len(texts) / (time.perf_counter() - start))
        print(f"round {round_no + 1}: " + ", ".join(f"{n} {s[-1]:.1f}" for n, s in speeds.items()), file=sys.stderr)
    return speeds, load_seconds


def quality(exports: Path, collections: list[str], runtimes: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """nDCG@10 on each collection's test split under each runtime.

    Vectors go to the default embedding cache ($GRADIR_CACHE_DIR), keyed by runtime, so a
    rerun (or another benchmark that encoded the same corpus) does not encode again.
    """
    scores = {}
    for name in collections:
        collection = load_collection(DATA / name)
        for backend, precision in runtimes:
            encoder = Encoder(exports_dir=exports, backend=backend, precision=precision, show_progress=False)
            start = time.perf_counter()
            result = evaluate(collection, split="test", encoder=encoder)
            scores[name, runtime_name(backend, precision)] = result.metrics["ndcg@10"]
            print(f"{name} {backend} {precision}: nDCG@10 {result.metrics['ndcg@10']:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return scores


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
            [sys.executable, "-m", "gradir", "eval", "--collection", str(collection_dir), "--json",
             "--backend", "torch", "--precision", "fp32"],
            env={**os.environ, "GRADIR_CACHE_DIR": cache},
            capture_output=True,
            text=True,
            check=True,
        )
        cli_s = time.perf_counter() - start
        assert json.loads(cli.stdout)["encoded_texts"] == 0
    return {"cold_s": cold_s, "warm_s": warm_s, "cli_warm_s": cli_s, "ndcg@10": cold.metrics["ndcg@10"]}


def speed_table(speeds: dict[str, list[float]], load_seconds: dict[str, float], scores: dict, collections: list[str]) -> str:
    plain = speeds["plain ST torch fp32"]
    header = "| encoder | docs/s (median) | x plain ST (median of per-round ratios) | export + load (s) |"
    header += "".join(f" nDCG@10 {c} (Δ vs torch fp32) |" for c in collections)
    lines = [header, "|---" * (4 + len(collections)) + "|"]
    for name, values in speeds.items():
        ratio = statistics.median(v / p for v, p in zip(values, plain))
        row = f"| {name} | {statistics.median(values):.1f} | {ratio:.2f}x | {load_seconds.get(name, 0.0):.1f} |"
        for c in collections:
            reference = scores.get((c, runtime_name("torch", "fp32")))
            if (c, name) in scores and reference is not None:
                row += f" {scores[c, name]:.4f} ({scores[c, name] - reference:+.4f}) |"
            else:
                row += " – |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--collections", nargs="+", default=["scifact", "nfcorpus"])
    parser.add_argument("--skip-quality", action="store_true", help="no nDCG evaluation per runtime")
    parser.add_argument("--quality-runtimes", nargs="+", default=[f"{b}-{p}" for b, p in RUNTIMES],
                        help="runtimes evaluated for nDCG, as backend-precision (default: all six)")
    parser.add_argument("--skip-cached", action="store_true", help="no cached re-evaluation")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()

    collection = load_collection(DATA / "scifact")
    texts = [doc.full_text for doc in list(collection.documents.values())[: args.docs]]
    with tempfile.TemporaryDirectory() as exports:
        speeds, load_seconds = encoding_rounds(texts, args.rounds, Path(exports))
        runtimes = [tuple(r.split("-")) for r in args.quality_runtimes]
        scores = {} if args.skip_quality else quality(Path(exports), args.collections, runtimes)
    table = speed_table(speeds, load_seconds, scores, [] if args.skip_quality else args.collections)
    if not args.skip_cached:
        evaluation = cached_evaluation(DATA / "scifact")
        table += "\n\n" + "\n".join([
            "| cached re-evaluation (default torch fp32) | value |",
            "|---|---|",
            f"| SciFact eval, empty cache (s) | {evaluation['cold_s']:.1f} |",
            f"| SciFact eval, cache filled, in process (s) | {evaluation['warm_s']:.2f} |",
            f"| SciFact eval, cache filled, `gradir eval` CLI incl. start-up (s) | {evaluation['cli_warm_s']:.2f} |",
            f"| cached speed-up, in process | {evaluation['cold_s'] / evaluation['warm_s']:.1f}x |",
            f"| cached speed-up, CLI | {evaluation['cold_s'] / evaluation['cli_warm_s']:.1f}x |",
        ])
    print(table)
    if not args.no_record:
        flags = " ".join(f for f, on in (("--skip-quality", args.skip_quality), ("--skip-cached", args.skip_cached)) if on)
        if args.quality_runtimes != [f"{b}-{p}" for b, p in RUNTIMES]:
            flags += " --quality-runtimes " + " ".join(args.quality_runtimes)
        append_section(
            "Encoding runtimes: speed and nDCG@10",
            f"python benchmarks/encode.py --docs {args.docs} --rounds {args.rounds} {flags}".strip(),
            f"Texts: the first {args.docs} SciFact documents (title + text, max 256 tokens), batch 32; "
            "nDCG@10 on the full test splits. Export + load: exporting the model for that runtime "
            "(ONNX export, quantisation or weight compression) and loading it, from nothing.",
            table,
        )


if __name__ == "__main__":
    main()
