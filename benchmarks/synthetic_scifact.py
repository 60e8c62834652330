"""Synthetic-only adaptation on SciFact: base against tuned for each loss, and the ablations.

Expected run time on 2 CPU cores: about 20 minutes for the reference run (the pipeline of
configs/demo-scifact.toml: embedded SmolLM2-135M through llama.cpp, all-MiniLM-L6-v2, no
human label anywhere), then 3 to 33 minutes per variant, about 3.5 hours in all. With
``--reference RUN`` (a finished ``make demo`` output and its cache) the reference is
copied and costs nothing.

    python benchmarks/synthetic_scifact.py [--reference demo-output --reference-cache DIR]
    python benchmarks/synthetic_scifact.py --seeds 0 1 2 --variants "bixse, 8 epochs"

With ``--seeds``, the whole set of runs is repeated per seed (``run.seed``: other
sampled passages, other generations, another training order), each seed in its own
folder under ``--work``; a row then gives the mean ± std over seeds of tuned nDCG@10,
the mean Δ with the paired randomisation test on the per-query nDCG@10 averaged over
seeds, and each seed's own p.

Every variant starts from a copy of the reference run directory and changes one setting;
``gradir run`` then reruns only the stages that setting reaches (a loss: train and
evaluate; the grader: grade onwards; the query types: everything from generation), and
the shared LLM and embedding caches make repeated calls free. Rows: the reference
(configs/demo-scifact.toml: the five query types in rotation, round-trip filter, mined
candidates graded by query likelihood fused with the retriever's and BM25's scores, BiXSE), the
labels from the likelihood alone, from the two retrievers alone (the LLM's weight 0), softer labels (temperature 2 standard deviations: a
mined candidate 2.2 below the source, the typical gap, gets p ≈ 0.33), the held-out validation queries
labelled without the base model's dense score (``grade.validation_retriever_weight = 0``: only the
selection can change), the other four losses on the same
judgments (Wasserstein in both forms), BiXSE for 4, 8 and 20 epochs instead of 2, at
learning rates 5e-5 and 1e-4 instead of 2e-5, and without the validation hold-out, the labels
read from the LLM's grade tokens 0-3 (``grade.grader = "llm"``: expected grade / 3, no fusion) at 2 and
20 epochs, and one ablation per row:

- ``one query type``: every passage gets a "question" query instead of the mix;
- ``no round-trip filter``: every generated query is kept;
- ``hybrid mining``: the candidates are the top ``mine.top_k`` of dense and BM25 fused
  (so the grader also reads documents the base model ranks low), and the label's retriever
  share is that fused score instead of the dense one;
- ``unverified negatives``: mined candidates are grade-0 negatives, not read by the LLM;
- ``documents, LLM grades``: SyCL-style documents written at levels 3/2/1/0 for each
  kept query, graded by the LLM together with the source passage and at most one mined
  candidate (``mine.top_k = 1``);
- ``documents, level labels``: the same documents labelled with the level they were
  written for (the LLM never grades);
- ``400 passages, unverified negatives``: five times the passages, so five times the
  queries, with the LLM kept out of grading to bound the time (about 20 minutes); its
  row is compared with ``unverified negatives`` at 80 passages: the effect of scale.

Each row gives the validation nDCG@10 (held-out synthetic queries, teacher grades) of
the base and of the chosen model with its interpolation α, SciFact test nDCG@10 and
Recall@100 of base and tuned, the paired
randomisation test on per-query nDCG@10, the training set's size, and the minutes the
variant took beyond its copy of the reference (the reference row: its whole pipeline).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import time
import statistics
import tomllib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradir  # noqa: E402
from gradir.atomic import write_text_atomic  # noqa: E402
from gradir.evaluation.compare import compare_per_query  # noqa: E402
from gain_correlation import validation_test_sentence  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"
REFERENCE = "reference (demo config)"
DEFAULT_CONFIG = ROOT / "configs" / "demo-scifact.toml"
DEFAULT_WORK = ROOT / "benchmarks" / "work" / "synthetic_scifact"

VARIANTS: dict[str, dict[str, dict]] = {
    REFERENCE: {},
    "likelihood alone (no retriever or BM25 fusion)": {"grade": {"retriever_weight": 0.0, "bm25_weight": 0.0}},
    "retrievers alone (0.5 dense + 0.5 BM25, no LLM share)": {"grade": {"retriever_weight": 0.5, "bm25_weight": 0.5}},
    "fused, label temperature 2": {"grade": {"temperature": 2.0}},
    "validation grades without the base model's score": {"grade": {"validation_retriever_weight": 0.0}},
    "infonce": {"train": {"loss": "infonce"}},
    "wasserstein": {"train": {"loss": "wasserstein"}},
    "listwise_kl": {"train": {"loss": "listwise_kl"}},
    "margin_mse": {"train": {"loss": "margin_mse"}},
    "wasserstein, per-query EMD": {"train": {"loss": "wasserstein", "loss_options": {"form": "emd"}}},
    "bixse, 8 epochs": {"train": {"epochs": 8}},
    "bixse, 20 epochs": {"train": {"epochs": 20}},
    "bixse, 4 epochs": {"train": {"epochs": 4}},
    "bixse, learning rate 1e-4": {"train": {"learning_rate": 1e-4}},
    "bixse, learning rate 5e-5": {"train": {"learning_rate": 5e-5}},
    "bixse, no validation hold-out": {"train": {"validation_share": 0.0}},
    "llm grade tokens": {"grade": {"grader": "llm"}},
    "llm grade tokens, 20 epochs": {"grade": {"grader": "llm"}, "train": {"epochs": 20}},
    "one query type (question)": {"generate": {"types": ["question"]}},
    "hybrid mining (dense + BM25 candidates)": {"mine": {"retriever": "hybrid"}},
    "no round-trip filter": {"filter": {"enabled": False}},
    "unverified negatives": {"grade": {"grader": "unverified"}},
    "documents, LLM grades": {"documents": {"enabled": True}, "mine": {"top_k": 1}},
    "documents, level labels": {"documents": {"enabled": True}, "grade": {"grader": "level"}},
    "400 passages, unverified negatives": {"generate": {"passages": 400}, "grade": {"grader": "unverified"}},
}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--reference", type=Path, help="a finished run of --config to start from (copied)")
    parser.add_argument("--reference-cache", type=Path, help="the cache directory that run used (copied)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--passages", type=int, help="sample this many passages instead of the config's generate.passages")
    parser.add_argument("--seeds", type=int, nargs="+", help="repeat every run per seed (run.seed); default: the config's seed only")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def variant_config(base: dict, overrides: dict[str, dict], cache: Path, seed: int | None = None) -> dict:
    config = copy.deepcopy(base)
    config["run"] = {**config.get("run", {}), "collection": str(SCIFACT), "cache_dir": str(cache)}
    if seed is not None:
        config["run"]["seed"] = seed
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values}
    return config


def run_variant(name: str, config: dict, work: Path) -> dict:
    """Run one variant (from a copy of the reference run) and return its row's figures."""
    out = work / slug(name)
    done = out / "benchmark.json"
    if done.is_file():
        return json.loads(done.read_text())
    reference = work / slug(REFERENCE)
    if name != REFERENCE and not out.exists():
        # Without the reference's benchmark.json: a variant that crashes must not pass for done.
        shutil.copytree(reference, out, ignore=shutil.ignore_patterns("run.lock", "benchmark.json"))
    start = time.perf_counter()
    result = gradir.run(config, out)
    minutes = (time.perf_counter() - start) / 60
    stages = result.summary()["stages"]
    comparison = json.loads((out / "eval" / "comparison.json").read_text())
    state = json.loads((out / "state.json").read_text())["stages"]
    if name == REFERENCE:  # its stages' own times, also when it was copied from a finished run
        minutes = sum(entry["seconds"] for entry in state.values()) / 60
    grade = state["grade"]["summary"]
    row = {
        "kept": state["filter"]["summary"]["written"],
        "judgments": grade["written"],
        "histogram": grade.get("final_histogram", grade.get("histogram")),
        "steps": state["train"]["summary"]["steps"],
        "selection": state["train"]["summary"].get("selection") or {},
        "base": comparison["base"], "tuned": comparison["tuned"],
        "test": comparison["paired_tests"]["ndcg@10"],
        "minutes": minutes,
        "reran": [stage for stage, entry in stages.items() if entry.get("status") != "skipped"],
        "per_query": {"base": read_per_query(out / "eval" / "base" / "per_query.tsv"),
                      "tuned": read_per_query(out / "eval" / "tuned" / "per_query.tsv")},
    }
    write_text_atomic(done, json.dumps(row))
    return row


def read_per_query(path: Path) -> dict[str, float]:
    """nDCG@10 per query from an evaluation's per_query.tsv."""
    lines = path.read_text(encoding="utf-8").splitlines()
    column = lines[0].split("\t").index("ndcg@10")
    return {fields[0]: float(fields[column]) for fields in (line.split("\t") for line in lines[1:])}


def render_seeds_table(rows: dict[str, list[dict]], seeds: list[int]) -> str:
    """One row per variant over seeds: mean ± std, mean Δ with the paired test on seed-averaged per-query nDCG@10."""
    lines = [
        "| variant | kept queries (per seed) | steps (per seed) | α chosen (per seed) | nDCG@10 base | nDCG@10 tuned (mean ± std) "
        "| Δ (mean) | wins/losses | p (rand., seed-averaged) | p per seed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in rows.items():
        tuned = [run["tuned"]["ndcg@10"] * 100 for run in runs]
        base = [run["base"]["ndcg@10"] * 100 for run in runs]
        queries = sorted(runs[0]["per_query"]["base"])
        averaged = {side: {q: {"ndcg@10": statistics.fmean(run["per_query"][side][q] for run in runs)} for q in queries}
                    for side in ("base", "tuned")}
        test = compare_per_query(averaged["base"], averaged["tuned"], "ndcg@10")
        alphas = " ".join(f"{(run.get('selection') or {}).get('alpha', '–')}" for run in runs)
        std = statistics.stdev(tuned) if len(tuned) > 1 else 0.0
        lines.append(
            f"| {name} | {' '.join(str(run['kept']) for run in runs)} | {' '.join(str(run['steps']) for run in runs)} "
            f"| {alphas} | {statistics.fmean(base):.2f} | {statistics.fmean(tuned):.2f} ± {std:.2f} "
            f"| {statistics.fmean(tuned) - statistics.fmean(base):+.2f} | {test.wins}/{test.losses} | {test.p_randomization:.3f} "
            f"| {' '.join(format(run['test']['p_randomization'], '.3f') for run in runs)} |"
        )
    return "\n".join(lines) + f"\n\nSeeds: {' '.join(map(str, seeds))}."


def render_table(rows: dict[str, dict]) -> str:
    lines = [
        "| variant | kept queries | judgments (grades 0/1/2/3) | steps | validation base → chosen (α) | nDCG@10 base → tuned | Δ | wins/losses | p (rand.) | Recall@100 base → tuned | min |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        histogram = "/".join(str(row["histogram"].get(g, 0)) for g in "0123")
        test = row["test"]
        chosen = row.get("selection") or {}
        validation = (f"{chosen['base'] * 100:.1f} → {chosen['score'] * 100:.1f} ({chosen['alpha']:g})"
                      if chosen else "off")
        lines.append(
            f"| {name} | {row['kept']} | {row['judgments']} ({histogram}) | {row['steps']} | {validation} "
            f"| {row['base']['ndcg@10'] * 100:.2f} → {row['tuned']['ndcg@10'] * 100:.2f} | {test['delta'] * 100:+.2f} "
            f"| {test['wins']}/{test['losses']} | {test['p_randomization']:.3f} "
            f"| {row['base']['recall@100'] * 100:.2f} → {row['tuned']['recall@100'] * 100:.2f} | {row['minutes']:.1f} |"
        )
    return "\n".join(lines) + "\n\n" + validation_test_correlation(rows)


def validation_test_correlation(rows: dict[str, dict]) -> str:
    """Spearman ρ between each row's validation gain (chosen − base, on its held-out synthetic
    queries) and its test gain: does the label-free figure rank the variants as test does?"""
    pairs = [(row["selection"]["score"] - row["selection"]["base"], row["test"]["delta"])
             for row in rows.values() if row.get("selection")]
    return validation_test_sentence(pairs, "row")


def main() -> None:
    args = parse_arguments()
    started = time.perf_counter()
    base = tomllib.loads(args.config.read_text(encoding="utf-8"))
    if args.passages:
        base["generate"] = {**base.get("generate", {}), "passages": args.passages}
    names = [REFERENCE] + [n for n in args.variants if n != REFERENCE]
    if args.seeds:
        per_seed: dict[str, list[dict]] = {name: [] for name in names}
        for seed in args.seeds:
            work = args.work / f"seed{seed}"
            for name, row in run_all(names, base, work, args, seed).items():
                per_seed[name].append(row)
        table = render_seeds_table(per_seed, args.seeds)
    else:
        table = render_table(run_all(names, base, args.work, args))
    print(table)
    if not args.no_record:
        record(table, args, (time.perf_counter() - started) / 60)


def run_all(names: list[str], base: dict, work: Path, args: argparse.Namespace, seed: int | None = None) -> dict[str, dict]:
    """The reference and each variant in ``work`` (sharing one LLM and embedding cache), finished runs kept."""
    cache = args.work / "cache"
    work.mkdir(parents=True, exist_ok=True)
    reference = work / slug(REFERENCE)
    if args.reference and seed is None and not reference.exists():
        shutil.copytree(args.reference, reference, ignore=shutil.ignore_patterns("run.lock"))
        if args.reference_cache and not cache.exists():
            shutil.copytree(args.reference_cache, cache)
    rows: dict[str, dict] = {}
    for name in names:
        rows[name] = run_variant(name, variant_config(base, VARIANTS[name], cache, seed), work)
        print(f"{name}{'' if seed is None else f' (seed {seed})'}: nDCG@10 {rows[name]['base']['ndcg@10']:.4f} -> "
              f"{rows[name]['tuned']['ndcg@10']:.4f}", flush=True)
    return rows


def shown(path: Path) -> str:
    """A config's path as the table shows it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def record(table: str, args: argparse.Namespace, minutes: float) -> None:
    config = tomllib.loads(args.config.read_text(encoding="utf-8"))
    passages = args.passages or config.get("generate", {}).get("passages", 80)
    append_section(
        "Synthetic-only adaptation on SciFact",
        f"python benchmarks/synthetic_scifact.py{' --reference RUN --reference-cache CACHE' if args.reference else ''}"
        f"{' --config ' + shown(args.config) if args.config.resolve() != DEFAULT_CONFIG else ''}"
        f"{' --passages ' + str(args.passages) if args.passages else ''}"
        f"{' --seeds ' + ' '.join(map(str, args.seeds)) if args.seeds else ''}"
        f"{' --variants ' + ' '.join(repr(v) for v in args.variants) if set(args.variants) != set(VARIANTS) else ''}"
        f"{' --work ' + shown(args.work) if args.work.resolve() != DEFAULT_WORK else ''}",
        f"Data: {shown(args.config)} ({passages} sampled SciFact passages, embedded SmolLM2-135M, no human label), "
        f"evaluated on the full test split (300 queries, 5,183 documents). "
        + ("" if args.seeds else "The min column is the time each variant took beyond its copy of the reference "
           "(reference row: the whole pipeline). ")
        + f"This script took {minutes:.0f} min this time.",
        table,
    )

if __name__ == "__main__":
    main()
