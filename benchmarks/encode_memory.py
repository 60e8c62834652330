"""Memory of encoding a corpus whose vectors are all in the embedding cache: peak and time.

    python benchmarks/encode_memory.py [--texts 200000] [--before SRC]

Fills a fresh embedding cache with ``--texts`` random unit vectors (384 dimensions, the
size of all-MiniLM-L6-v2's) under the keys of as many distinct texts, then, in a fresh
process each, calls ``Encoder.encode`` on those texts, every one a cache hit, and reports
the process's peak resident memory above what it held before the call, NumPy's peak
allocation during the call (tracemalloc), and the seconds. With ``--before SRC`` (the
``src`` folder of an older checkout) the same is measured with that code beside this one,
so the two figures come from one run. The vectors alone are texts × 384 × 4 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIMENSION = 384


def texts(count: int) -> list[str]:
    return [f"passage {i}: a text that stands for one document of a large collection" for i in range(count)]


def encoder_class():
    try:
        from gradir.retrieval.encoding import Encoder
    except ModuleNotFoundError:  # checkouts before 2026-11-24 kept the encoder at gradir.encoding
        from gradir.encoding import Encoder
    return Encoder


def fill(cache: Path, count: int) -> None:
    import numpy as np

    encoder = encoder_class()(cache_dir=cache, show_progress=False)
    from gradir.retrieval.embedding_cache import text_key

    rng = np.random.default_rng(0)
    for start in range(0, count, 50_000):
        chunk = texts(count)[start : start + 50_000]
        vectors = rng.normal(size=(len(chunk), DIMENSION)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        encoder._cache.put_many([text_key(t) for t in chunk], vectors)


def child(cache: Path, count: int) -> None:
    import tracemalloc

    encoder = encoder_class()(cache_dir=cache, show_progress=False)
    corpus = texts(count)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    vectors = encoder.encode(corpus)
    seconds = time.perf_counter() - start
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert vectors.shape == (count, DIMENSION) and encoder.cache_hits == count
    print(json.dumps({"seconds": seconds, "rss_mb": (peak - before) / 1024, "traced_mb": traced / 2**20}))


def measure(src: Path, cache: Path, count: int) -> dict:
    environment = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{Path(__file__).parent}"}
    done = subprocess.run([sys.executable, __file__, "--child", str(cache), "--texts", str(count)],
                          env=environment, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=200_000)
    parser.add_argument("--before", type=Path, help="src folder of the code to compare with")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.texts)
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        fill(cache, args.texts)
        rows = {}
        if args.before:
            rows["before"] = measure(args.before.resolve(), cache, args.texts)
        rows["this checkout"] = measure(ROOT / "src", cache, args.texts)
    vectors_mb = args.texts * DIMENSION * 4 / 2**20
    lines = ["| code | peak RSS above start (MB) | NumPy peak, tracemalloc (MB) | seconds |", "|---|---|---|---|"]
    lines += [f"| {name} | {r['rss_mb']:.0f} | {r['traced_mb']:.0f} | {r['seconds']:.2f} |" for name, r in rows.items()]
    table = "\n".join(lines) + f"\n\n{args.texts:,} texts, all cached; the vectors alone are {vectors_mb:.0f} MB."
    print(table)
    if not args.no_record:
        append_section("Encoding memory: a corpus from the embedding cache",
                       f"python benchmarks/encode_memory.py --texts {args.texts}" + (" --before SRC" if args.before else ""),
                       "Each row a fresh process; both rows from one run.", table)


if __name__ == "__main__":
    main()
