"""Training recipes on one run's judgments: each recipe over several training seeds, base against tuned.

A finished ``gradir run`` fixes the expensive part (generation, filtering, mining,
grading); this script trains the embedding model on that run's judgments again under
other recipes — loss, epochs, learning rate, the validation hold-out — each with several
seeds (``TrainSettings.seed``: the validation split, the batch order, dropout), and
evaluates every model on a labelled split of the collection. The judgments stay fixed,
so the seeds measure the training's own variance, not the generator's.

    python benchmarks/train_sweep.py RUN --collection ../shared/data/beir/scifact \
        --seeds 0 1 2 --variants reference "bixse, 8 epochs"

``--runs NAME=DIR`` adds the reference recipe on other runs' judgments (e.g. the same run
graded with another label temperature). Each row: the mean ± std over seeds of test
nDCG@10, the mean Δ against the base with the paired randomisation test on per-query
nDCG@10 averaged over seeds, each seed's p, the α the validation chose per seed, and
the seconds per training. Runs on a GPU when one is there (sentence-transformers picks
it); ``--model`` names the base model's folder when the installed package is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gradir.atomic import write_text_atomic  # noqa: E402
from gradir.collections.loader import load_collection  # noqa: E402
from gradir.evaluation import evaluate  # noqa: E402
from gradir.evaluation.compare import compare_per_query  # noqa: E402
from gradir.pipeline.config import load_config  # noqa: E402
from gradir.pipeline.files import JUDGMENTS  # noqa: E402
from gradir.pipeline.stages import source_passages_in, synthetic_documents_in, train_settings  # noqa: E402
from gradir.retrieval.encoding import Encoder  # noqa: E402
from gradir.training import train  # noqa: E402
from results_file import append_section, machine_description  # noqa: E402

REFERENCE = "reference"
# name -> (loss or None for the run's own, TrainSettings overrides, loss options)
VARIANTS: dict[str, tuple[str | None, dict, dict]] = {
    REFERENCE: (None, {}, {}),
    "bixse, 8 epochs": ("bixse", {"epochs": 8}, {}),
    "bixse, lr 1e-4": ("bixse", {"learning_rate": 1e-4}, {}),
    "bixse, 8 epochs, lr 5e-5": ("bixse", {"epochs": 8, "learning_rate": 5e-5}, {}),
    "bixse, no validation hold-out": ("bixse", {"validation_share": 0.0}, {}),
    "infonce, no validation hold-out": ("infonce", {"validation_share": 0.0}, {}),
    "infonce": ("infonce", {}, {}),
    "infonce, 8 epochs": ("infonce", {"epochs": 8}, {}),
    "listwise_kl": ("listwise_kl", {}, {}),
    "margin_mse": ("margin_mse", {}, {}),
    "wasserstein": ("wasserstein", {}, {}),
    "wasserstein, per-query EMD": ("wasserstein", {}, {"form": "emd"}),
}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished gradir run directory (its config.toml and judgments)")
    parser.add_argument("--collection", type=Path, required=True, help="the collection the run used, with qrels")
    parser.add_argument("--split", default="test")
    parser.add_argument("--runs", nargs="*", default=[], metavar="NAME=DIR",
                        help="other runs on the same collection: the reference recipe on their judgments")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mini-batch-size", type=int,
                        help="GradCache mini-batch for every recipe (0: none, the whole batch at once; default: the run's)")
    parser.add_argument("--model", type=Path, help="the base model's folder (default: the installed default model)")
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "work" / "train_sweep")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


def run_inputs(run: Path) -> dict:
    """What training needs from a finished run: judgments, settings, loss, query groups, written documents."""
    config = load_config(run / "config.toml")
    return {"judgments": run / JUDGMENTS, "settings": train_settings(config), "loss": config.train.loss,
            "loss_options": dict(config.train.loss_options), "groups": source_passages_in(run),
            "documents": synthetic_documents_in(run)}


def train_and_evaluate(inputs: dict, variant: str, seed: int, collection, args, out: Path) -> dict:
    """One training (cached in ``out/row.json``) and its evaluation on the split."""
    done = out / "row.json"
    if done.is_file():
        return json.loads(done.read_text())
    loss, overrides, options = VARIANTS[variant]
    settings = replace(inputs["settings"], seed=seed, **overrides)
    if args.mini_batch_size is not None:  # exact either way (GradCache); only memory and speed change
        settings = replace(settings, mini_batch_size=args.mini_batch_size or None)
    start = time.perf_counter()
    result = train(inputs["judgments"], collection, loss or inputs["loss"], out / "model", model=args.model,
                   settings=settings, loss_options={**(inputs["loss_options"] if loss is None else {}), **options},
                   extra_documents=inputs["documents"], query_groups=inputs["groups"])
    seconds = time.perf_counter() - start
    tuned = evaluate(collection, split=args.split, encoder=Encoder(out / "model", cache_dir=False, show_progress=False))
    row = {"seconds": seconds, "steps": result.steps, "selection": result.selection or {},
           "ndcg@10": tuned.metrics["ndcg@10"], "per_query": {q: m["ndcg@10"] for q, m in tuned.per_query.items()}}
    write_text_atomic(done, json.dumps(row))
    return row


def render(rows: dict[str, list[dict]], base: dict, seeds: list[int]) -> str:
    lines = [
        "| judgments | recipe | steps | α chosen (per seed) | nDCG@10 base | nDCG@10 tuned (mean ± std) | Δ (mean) "
        "| wins/losses | p (rand., seed-averaged) | p per seed | s per training |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base_per_query = {q: {"ndcg@10": v} for q, v in base["per_query"].items()}
    for (run_name, variant), runs in rows.items():
        tuned = [r["ndcg@10"] * 100 for r in runs]
        averaged = {q: {"ndcg@10": statistics.fmean(r["per_query"][q] for r in runs)} for q in base["per_query"]}
        test = compare_per_query(base_per_query, averaged, "ndcg@10")
        per_seed = [compare_per_query(base_per_query, {q: {"ndcg@10": v} for q, v in r["per_query"].items()},
                                      "ndcg@10").p_randomization for r in runs]
        std = statistics.stdev(tuned) if len(tuned) > 1 else 0.0
        alphas = " ".join(str(r["selection"].get("alpha", "–")) for r in runs)
        lines.append(
            f"| {run_name} | {variant} | {runs[0]['steps']} | {alphas} | {base['ndcg@10'] * 100:.2f} "
            f"| {statistics.fmean(tuned):.2f} ± {std:.2f} | {statistics.fmean(tuned) - base['ndcg@10'] * 100:+.2f} "
            f"| {test.wins}/{test.losses} | {test.p_randomization:.3f} | {' '.join(f'{p:.3f}' for p in per_seed)} "
            f"| {statistics.fmean(r['seconds'] for r in runs):.0f} |"
        )
    return "\n".join(lines) + f"\n\nSeeds: {' '.join(map(str, seeds))}."


def main() -> None:
    args = parse_arguments()
    started = time.perf_counter()
    collection = load_collection(args.collection)
    base_result = evaluate(collection, split=args.split, encoder=Encoder(args.model, cache_dir=False, show_progress=False))
    base = {"ndcg@10": base_result.metrics["ndcg@10"],
            "per_query": {q: m["ndcg@10"] for q, m in base_result.per_query.items()}}
    plan = [(args.run.name, args.run, v) for v in args.variants]
    for spec in args.runs:
        name, _, path = spec.partition("=")
        plan.append((name, Path(path), REFERENCE))
    rows: dict[tuple[str, str], list[dict]] = {}
    for run_name, run, variant in plan:
        inputs = run_inputs(run)
        for seed in args.seeds:
            out = args.work / run_name / "".join(c if c.isalnum() else "-" for c in variant) / f"seed{seed}"
            row = train_and_evaluate(inputs, variant, seed, collection, args, out)
            rows.setdefault((run_name, variant), []).append(row)
            print(f"{run_name} / {variant} / seed {seed}: nDCG@10 {base['ndcg@10']:.4f} -> {row['ndcg@10']:.4f} "
                  f"(α {row['selection'].get('alpha', '–')}, {row['seconds']:.0f} s)", flush=True)
    table = render(rows, base, args.seeds)
    print(table)
    write_text_atomic(args.work / "table.md", table + "\n")
    if not args.no_record:
        import torch

        accelerator = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
        others = f" --runs {' '.join(args.runs)}" if args.runs else ""
        append_section(
            "Training recipes on fixed judgments",
            f"python benchmarks/train_sweep.py RUN --collection COLLECTION --split {args.split} "
            f"--seeds {' '.join(map(str, args.seeds))}"
            f"{'' if args.mini_batch_size is None else f' --mini-batch-size {args.mini_batch_size}'} --variants {' '.join(repr(v) for v in args.variants)}{others}",
            f"Judgments: each row's run directory (the first the main one); {len(collection.split_queries(args.split))} "
            f"{args.split} queries of {collection.root.name}. Seeds are training seeds on fixed judgments; this "
            f"script took {(time.perf_counter() - started) / 60:.0f} min.",
            table, machine=machine_description(accelerator),
        )


if __name__ == "__main__":
    main()
