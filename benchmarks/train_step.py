"""Training step time and peak memory of each loss against sentence-transformers' MNRL.

Expected run time on 2 CPU cores: about 6 minutes with the defaults.

    .venv/bin/python benchmarks/train_step.py [--batch-size 16] [--list-size 4] [--rounds 5]

One batch of NFCorpus dev judgments (queries with a positive and list-size − 1
lower-graded documents, 256 tokens at most) is used for every loss. Step time: forward,
backward and an AdamW step of all-MiniLM-L6-v2, the losses visited round-robin for
``--rounds`` rounds after a warm-up, the median per loss and its ratio to MNRL (goal
≤ 1.15). Peak memory: each loss runs its steps again in a fresh process and reports its
peak resident set size (CPU) or peak CUDA memory (GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from gradir.collections import load_collection  # noqa: E402
from gradir.grading.judgments import judgments_from_qrels  # noqa: E402
from gradir.losses import LOSSES  # noqa: E402
from gradir.models import default_model_path  # noqa: E402
from gradir.training import assemble_training_set  # noqa: E402
from results_file import append_section, machine_description  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["mnrl", *LOSSES]


def make_batch(batch_size: int, list_size: int, loss: str):
    collection = load_collection(ROOT.parent / "shared" / "data" / "beir" / "nfcorpus")
    judgments = judgments_from_qrels(collection, "dev", max_queries=batch_size * 4, seed=0)
    layout = "infonce" if loss in ("mnrl", "infonce") else loss
    rows = assemble_training_set(judgments, collection.documents, layout, list_size=list_size, seed=0)
    rows = rows.select(range(batch_size))
    labels = torch.tensor(rows["label"]) if "label" in rows.column_names else None
    columns = [rows[name] for name in rows.column_names if name != "label"]
    return columns, labels


def make_loss(name: str, model):
    if name == "mnrl":
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

        return MultipleNegativesRankingLoss(model)
    return LOSSES[name](model)


def setup(names: list[str], batch_size: int, list_size: int):
    from sentence_transformers import SentenceTransformer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(str(default_model_path()), device=device)
    model.train()
    prepared = {}
    for name in names:
        columns, labels = make_batch(batch_size, list_size, name)
        features = [
            {k: v.to(device) if torch.is_tensor(v) else v for k, v in model.preprocess(c).items()} for c in columns
        ]
        loss = make_loss(name, model).to(device)
        optimizer = torch.optim.AdamW(loss.parameters(), lr=1e-5)
        prepared[name] = (features, None if labels is None else labels.to(device), loss, optimizer)
    return prepared, device


def step(prepared, name: str, device: str) -> float:
    features, labels, loss, optimizer = prepared[name]
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    optimizer.zero_grad()
    loss(features, labels).backward()
    optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_memory(name: str, args) -> float:
    """Peak memory (MB) of a fresh process doing warm-up plus two steps of one loss."""
    out = subprocess.run(
        [sys.executable, __file__, "--only", name, "--batch-size", str(args.batch_size), "--list-size", str(args.list_size)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--list-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=NAMES, help=argparse.SUPPRESS)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()

    if args.only:
        prepared, device = setup([args.only], args.batch_size, args.list_size)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(3):
            step(prepared, args.only, device)
        peak = (
            torch.cuda.max_memory_allocated() / 2**20
            if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        print(json.dumps({"peak_mb": peak}))
        return

    prepared, device = setup(NAMES, args.batch_size, args.list_size)
    for name in NAMES:
        step(prepared, name, device)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in NAMES}
    for _ in range(args.rounds):
        for name in NAMES:
            times[name].append(step(prepared, name, device))
    medians = {name: statistics.median(values) for name, values in times.items()}
    memory = {name: peak_memory(name, args) for name in NAMES}
    kind = "peak CUDA MB" if device == "cuda" else "peak RSS MB"
    lines = [f"| loss | median step (s) | vs MNRL | {kind} | vs MNRL |", "|---|---|---|---|---|"]
    for name in NAMES:
        lines.append(
            f"| {name} | {medians[name]:.3f} | {medians[name] / medians['mnrl']:.2f}x | "
            f"{memory[name]:.0f} | {memory[name] / memory['mnrl']:.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_record:
        gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU"
        append_section(
            "Training step per loss",
            f"python benchmarks/train_step.py --batch-size {args.batch_size} --list-size {args.list_size} --rounds {args.rounds}",
            f"Batch: {args.batch_size} queries x {args.list_size} documents (MNRL and infonce: 1 positive + "
            f"{args.list_size - 1} hard negatives), NFCorpus dev, max 256 tokens.",
            table,
            machine=f"{machine_description(gpu)}, torch {torch.__version__}",
        )

if __name__ == "__main__":
    main()
