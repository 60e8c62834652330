"""Losses on real graded labels: NFCorpus dev qrels → train → NFCorpus test.

Expected run time on 2 CPU cores: about 7 minutes a run at 30 steps and 16-20 at 60
(training, scoring the held-out validation queries, evaluating on the 3,633-document
test corpus), so 2-5 hours for 5 losses x 3 seeds; finished runs are kept in ``--work`` and
skipped when the script is started again; ``--work`` is tied to the recipe (steps,
batch, learning rate, negatives, validation, loss options), so another recipe needs
another one.

    .venv/bin/python benchmarks/losses_nfcorpus.py [--seeds 0 1 2] [--steps 30]

Why dev: BEIR's NFCorpus *train* qrels hold grade 1 only, so graded losses would see
binary labels there; *dev* holds grades 1 and 2. Every loss trains on the same judgments:
the dev queries' human grades (1, 2) plus ``--negatives`` unjudged documents per query
from the base model's ranks 30–100 (``--negatives-from``), taken as grade 0.
``--splits dev train`` adds train's 2,590 queries, whose grade 1 counts as dev's grade 1
(p = 0.5): more queries for the same graded scale.
``infonce`` sees them binarised (grade ≥ 1 positive, grade 0 negative); ``bixse``,
``listwise_kl`` and ``margin_mse`` see ``p = grade / 2``; ``wasserstein`` sees the
grades. Rows: the base model and each loss, mean ± std over seeds of test nDCG@10 and
Recall@100, and the paired t-test and randomisation test against ``infonce`` on the
per-query nDCG@10 averaged over seeds, and the same against the base model.

Each run holds out ``--validation-share`` of the training queries (the same queries
gradir.training.validation.hold_out would pick for the seed) and keeps the best of the
base, the trained model and their interpolations (gradir.training.selection); the table
gives the α chosen per seed, and the last line the rank correlation (Spearman) between a
run's validation gain over the base and its test gain. The held-out queries are judged as
the pipeline judges its held-out synthetic queries: their base model's top
``--validation-pool`` documents (the pipeline's mine.top_k), each with its human grade or
else 0; a query with no relevant document there is left out (the pipeline keeps a
synthetic query only when its source passage is in the base's top 10). Judging them by
the training judgments instead (human grades plus far mined negatives) rewards pushing
easy negatives down and chose a model 0.95 below the base (benchmarks/RESULTS.md,
"validation_bias" of the condensed-selection run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gradir.atomic import write_text_atomic  # noqa: E402
from gradir.collections import load_collection  # noqa: E402
from gradir.retrieval.encoding import Encoder  # noqa: E402
from gradir.evaluation import evaluate  # noqa: E402
from gradir.evaluation.compare import compare_per_query  # noqa: E402
from gradir.grading.judgments import Judgment, judgments_from_qrels, read_judgments, write_judgments  # noqa: E402
from gradir.losses import LOSSES  # noqa: E402
from gradir.pipeline.config import MineSection  # noqa: E402
from gradir.retrieval.search import search  # noqa: E402
from gradir.training import TrainSettings, train  # noqa: E402
from gradir.training.selection import rejected, tuned_source  # noqa: E402
from gradir.training.validation import hold_out  # noqa: E402
from gain_correlation import validation_test_sentence  # noqa: E402
from paired_recipes import changed_settings  # noqa: E402
from results_file import append_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NFCORPUS = ROOT.parent / "shared" / "data" / "beir" / "nfcorpus"
DEFAULT_WORK = ROOT / "benchmarks" / "work" / "losses_nfcorpus"
TRAINING_QUERIES = {
    ("dev",): "324 queries, grades 1–2",
    ("train",): "2,590 queries, grade 1",
    ("dev", "train"): "2,914 queries: dev's grades 1–2, train's grade 1",
}  # keyed by the splits in sorted order, as parse_arguments leaves them


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--list-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--max-seq-length", type=int, default=128, help="token limit while training")
    parser.add_argument("--negatives", type=int, default=3, help="mined grade-0 documents per dev query")
    parser.add_argument(
        "--negatives-from", type=int, nargs=2, default=[30, 100], metavar=("FIRST", "LAST"),
        help="base-model ranks the grade-0 documents are sampled from",
    )
    parser.add_argument("--threshold", type=int, default=1, help="lowest grade that is a positive (NFCorpus: 1-2)")
    parser.add_argument("--validation-share", type=float, default=0.2, help="dev queries held out for selection (0: off)")
    parser.add_argument("--validation-pool", type=int, default=MineSection().top_k,
                        help="base-model top k judged for each held-out query (the pipeline's mine.top_k)")
    parser.add_argument("--validate-every", type=int, default=0,
                        help="also score the model on the held-out queries every this many steps (0: at the end only)")
    parser.add_argument("--average-checkpoints", type=int, default=1,
                        help="also score the average of the k best-scoring checkpoints as a candidate (1: off)")
    parser.add_argument("--confirm-level", type=float, default=1.0,
                        help="hand back a tuned winner only if its held-out gain is significant at this level (1: off, "
                             "as every recorded run; benchmarks/selection_confirmation.py replays the test on finished "
                             "runs, and an ungated run keeps the test figure of the model the test would send back)")
    parser.add_argument("--positives-per-query", type=int, default=0,
                        help="training rows per query at most, its highest grades first (0: one per positive)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="training precision (bf16: bfloat16 mixed precision, for CPUs with AMX or GPUs from Ampere on)")
    parser.add_argument(
        "--loss-option", action="append", default=[], metavar="LOSS:KEY=VALUE",
        help="an option for one loss, e.g. wasserstein:form=emd (repeatable)",
    )
    parser.add_argument("--splits", nargs="+", default=["dev"], choices=["dev", "train"],
                        help="qrels splits trained on (train: 2,590 more queries, grade 1 only, scaled as dev's grade 1)")
    parser.add_argument("--data", type=Path, default=NFCORPUS, help="the NFCorpus folder (BEIR layout)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument(
        "--measured-on", default=None, metavar="MACHINE",
        help="the machine line for RESULTS.md when the runs in --work were made elsewhere (e.g. the lent GPU)",
    )
    parser.add_argument(
        "--infonce-from", type=Path, default=None, metavar="WORK",
        help="read the InfoNCE runs (same seeds) from this other --work folder, for 'Δ vs infonce' when this "
             "recipe's change (e.g. --positives-per-query) was not run with InfoNCE; the table names the difference",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    args.splits = sorted(set(args.splits))  # one order (and one judgments file) whatever the order given
    if "infonce" in args.losses:
        args.infonce_from = None  # this recipe's own InfoNCE runs are the reference
    return args


SETTINGS = ("steps", "batch_size", "list_size", "learning_rate", "max_seq_length", "negatives", "negatives_from",
            "threshold", "validation_share", "loss_option")


def loss_options(args: argparse.Namespace, loss: str) -> dict:
    from gradir.cli import parse_loss_options

    return parse_loss_options([o.split(":", 1)[1] for o in args.loss_option if o.split(":", 1)[0] == loss])


def check_work_settings(args: argparse.Namespace) -> None:
    """Tie ``--work`` to one recipe: finished runs made with other settings are never mixed in."""
    args.work.mkdir(parents=True, exist_ok=True)
    # Runs stored before held-out queries were judged by the base's top k ranked their training
    # judgments (human grades and far negatives): another selection, so another recipe.
    settings = {name: getattr(args, name) for name in SETTINGS} | {"validation": "base pool, condensed",
                                                                   "validation_pool": args.validation_pool}
    if args.splits != ["dev"]:  # recipes stored before --splits existed trained on dev alone
        settings["splits"] = args.splits
    if args.validate_every:  # nor had they --validate-every
        settings["validate_every"] = args.validate_every
    if args.precision != "fp32":  # nor --precision
        settings["precision"] = args.precision
    if args.average_checkpoints != 1:  # nor --average-checkpoints
        settings["average_checkpoints"] = args.average_checkpoints
    if args.positives_per_query:  # nor --positives-per-query
        settings["positives_per_query"] = args.positives_per_query
    if args.confirm_level != 1:  # nor --confirm-level
        settings["confirm_level"] = args.confirm_level
    stored = args.work / "settings.json"
    if not stored.is_file():
        write_text_atomic(stored, json.dumps(settings, indent=1))
        return
    previous = json.loads(stored.read_text())
    changed = [f"{name} {previous.get(name)} -> {value}" for name, value in settings.items() if previous.get(name) != value]
    if changed:
        raise SystemExit(
            f"{args.work} holds runs made with other settings ({'; '.join(changed)}); pass another --work for this recipe"
        )


def evaluated(collection, model_path: Path | None, out: Path) -> dict:
    """Test metrics and per-query scores of a model, cached in ``out``."""
    done = out / "eval.json"
    if done.is_file():
        return json.loads(done.read_text())
    result = evaluate(collection, split="test", encoder=Encoder(model_path, show_progress=False))
    record = {"metrics": result.metrics, "per_query": result.per_query, "seconds": result.seconds}
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(done, json.dumps(record))
    return record


def seed_split(args: argparse.Namespace, collection, judgments_path: Path, seed: int) -> tuple[Path, Path]:
    """This seed's training judgments and its held-out queries judged by the base model's top k (cached in --work)."""
    training_path = args.work / f"seed{seed}_training.jsonl"
    validation_path = args.work / f"seed{seed}_validation.jsonl"
    if training_path.is_file() and validation_path.is_file():
        return training_path, validation_path
    judgments = read_judgments(judgments_path)
    training, held = hold_out(judgments, collection.documents, share=args.validation_share,
                              threshold=args.threshold, seed=seed)
    if held is None:
        raise SystemExit(f"--validation-share {args.validation_share} holds out no query")
    qrels = {q: docs for split in args.splits for q, docs in collection.qrels(split).items()}
    queries = {q: collection.queries[q] for q in held.queries}
    encoder = Encoder(None, cache_dir=args.work / "base_cache", show_progress=False)
    pools = search(collection.documents, queries, "dense", encoder=encoder, top_k=args.validation_pool)
    pooled = []
    for q in sorted(pools):
        for d in pools[q]:
            grade = qrels[q].get(d, 0)  # unjudged: not relevant
            pooled.append(Judgment(q, queries[q].text, d, grade, max(grade, 0) / 2, "qrels", float(grade)))
    scoring = {j.query_id for j in pooled if j.grade >= args.threshold}
    print(f"seed {seed}: {len(queries)} held-out queries, {len(scoring)} with a relevant document in the base's "
          f"top {args.validation_pool} (the others cannot score and are left out)", flush=True)
    write_judgments(training_path, training)
    write_judgments(validation_path, [j for j in pooled if j.query_id in scoring])
    return training_path, validation_path


def main() -> None:
    args = parse_arguments()
    started = time.perf_counter()
    collection = load_collection(args.data)
    check_work_settings(args)
    judgments_path = args.work / f"{'_'.join(args.splits)}_judgments.jsonl"
    if not judgments_path.is_file():
        judgments = [  # NFCorpus' scale is 0-2 in every split: train's grade 1 is p 0.5, as on dev
            judgment for split in args.splits for judgment in judgments_from_qrels(
                collection, split, negatives=args.negatives, negatives_from=tuple(args.negatives_from), top_grade=2)
        ]
        write_judgments(judgments_path, judgments)
    base = evaluated(collection, None, args.work / "base")
    runs: dict[str, list[dict]] = {}
    train_seconds: list[float] = []
    for seed in args.seeds:
        for loss in args.losses:
            out = args.work / f"{loss}-seed{seed}"
            if not (out / "training.json").is_file():
                training_path, validation_path = seed_split(args, collection, judgments_path, seed)
                settings = TrainSettings(
                    max_steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
                    list_size=args.list_size, seed=seed, save_steps=10_000, max_seq_length=args.max_seq_length,
                    positives_per_query=args.positives_per_query,
                    threshold=args.threshold, validation_share=args.validation_share,
                    validate_every=args.validate_every,
                    precision=args.precision, average_checkpoints=args.average_checkpoints,
                    confirm_level=args.confirm_level,
                )
                train(training_path, collection, loss, out, settings=settings, loss_options=loss_options(args, loss),
                      validation_judgments=validation_path)
            train_seconds.append(json.loads((out / "training.json").read_text())["seconds"])
            runs.setdefault(loss, []).append(finished_run(collection, out, base))
            print(f"{loss} seed {seed}: nDCG@10 {runs[loss][-1]['metrics']['ndcg@10']:.4f}", flush=True)
    if args.infonce_from is not None:
        runs["infonce"] = borrowed_infonce_runs(args, collection, base)
    table = render_table(base, runs, args)
    minutes = (time.perf_counter() - started) / 60
    print(table)
    if not args.no_record:
        record(table, args, minutes, statistics.median(train_seconds) if train_seconds else 0.0)


def finished_run(collection, out: Path, base: dict) -> dict:
    """A trained run's test figures with its selection; one that handed back the base scores as the base (no re-encoding)."""
    selection = json.loads((out / "training.json").read_text()).get("selection") or {}
    scores = base if selection.get("output") == "base" else evaluated(collection, out, out)
    return {**scores, "selection": selection}


def shown(path: Path) -> str:
    """A path as given, relative to the repository (a linked folder keeps its name)."""
    return os.path.relpath(os.path.abspath(path), ROOT)


def borrowed_infonce_runs(args: argparse.Namespace, collection, base: dict) -> list[dict]:
    """The InfoNCE runs of ``--infonce-from``, seed for seed, scored on the same test split as this folder's base."""
    other = args.infonce_from
    if json.loads((other / "base" / "eval.json").read_text())["metrics"] != base["metrics"]:
        raise SystemExit(f"{other} was scored against another base model or test split than {args.work}")
    missing = [seed for seed in args.seeds if not (other / f"infonce-seed{seed}" / "training.json").is_file()]
    if missing:
        raise SystemExit(f"{other} has no finished InfoNCE run for seed {missing[0]}")
    return [finished_run(collection, other / f"infonce-seed{seed}", base) for seed in args.seeds]


def borrowed_recipe_note(args: argparse.Namespace) -> str:
    """Which settings the ``--infonce-from`` folder's recipe differs in from this one's."""
    changed = "; ".join(f"{k} {theirs} there, {ours} here"
                        for k, (theirs, ours) in changed_settings(args.infonce_from, args.work).items())
    return f"The infonce row is read from {shown(args.infonce_from)}, whose recipe differs from this one in: {changed}."


def mean_per_query(records: list[dict]) -> dict[str, dict[str, float]]:
    queries = records[0]["per_query"]
    return {q: {"ndcg@10": statistics.fmean(r["per_query"][q]["ndcg@10"] for r in records)} for q in queries}


def spread(values: list[float]) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values) * 100:.2f} ± {deviation * 100:.2f}"


def chosen_alphas(records: list[dict]) -> str:
    """α per seed, with the checkpoint's step when the run scored more than one (α@step); a winner the
    confirmation test sent back to the base as ``0 (α@step, p)``."""
    def chosen(selection: dict) -> str:
        if not selection:
            return "-"
        if rejected(selection):
            test, source = selection["confirmation"], tuned_source(selection)
            return f"0 ({test['alpha']:g}{f'@{source}' if source else ''}, p {test['p']:.2f})"
        source = tuned_source(selection) if selection["alpha"] > 0 else None
        return f"{selection['alpha']:g}" + (f"@{source}" if source else "")

    return " ".join(chosen(r["selection"]) for r in records)


def versus(reference: dict | None, records: list[dict]) -> str:
    if reference is None:
        return " | |"
    test = compare_per_query(reference, mean_per_query(records), "ndcg@10")
    return f" {test.delta * 100:+.2f} | {test.p_randomization:.3f} |"


def validation_test_correlation(base_test: float, runs: dict[str, list[dict]]) -> str:
    """Spearman ρ between a run's validation gain over the base and its test gain over the base.

    Gains, not levels: each seed holds out other queries, so the validation levels differ by
    seed while the gains are comparable (benchmarks/selection_agreement.py pools them over recipes).
    """
    pairs = [(r["selection"]["score"] - r["selection"]["base"], r["metrics"]["ndcg@10"] - base_test)
             for records in runs.values() for r in records if r["selection"]]
    return validation_test_sentence(pairs, "run")


def render_table(base: dict, runs: dict[str, list[dict]], args: argparse.Namespace) -> str:
    lines = [
        "| model | nDCG@10 (mean ± std) | Recall@100 (mean ± std) | Δ vs base | p (rand.) | Δ vs infonce | p (rand.) | α chosen per seed |",
        "|---|---|---|---|---|---|---|---|",
        f"| base (all-MiniLM-L6-v2) | {base['metrics']['ndcg@10'] * 100:.2f} | {base['metrics']['recall@100'] * 100:.2f} | | | | | |",
    ]
    base_per_query = {q: {"ndcg@10": m["ndcg@10"]} for q, m in base["per_query"].items()}
    reference = mean_per_query(runs["infonce"]) if "infonce" in runs else None
    for loss, records in runs.items():
        ndcg = spread([r["metrics"]["ndcg@10"] for r in records])
        recall = spread([r["metrics"]["recall@100"] for r in records])
        against_infonce = versus(None if loss == "infonce" else reference, records)
        lines.append(f"| {loss} | {ndcg} | {recall} |{versus(base_per_query, records)}{against_infonce} {chosen_alphas(records)} |")
    borrowed = f"\n\n{borrowed_recipe_note(args)}" if args.infonce_from is not None else ""
    return "\n".join(lines) + "\n\n" + validation_test_correlation(base["metrics"]["ndcg@10"], runs) + borrowed


def record(table: str, args: argparse.Namespace, minutes: float, median_train: float) -> None:
    command = "python benchmarks/losses_nfcorpus.py " + " ".join(
        [f"--seeds {' '.join(map(str, args.seeds))}",
         *([f"--losses {' '.join(args.losses)}"] if args.losses != list(LOSSES) else []),
         f"--steps {args.steps}", f"--batch-size {args.batch_size}",
         f"--list-size {args.list_size}", f"--learning-rate {args.learning_rate}",
         f"--max-seq-length {args.max_seq_length}", f"--negatives {args.negatives}",
         f"--negatives-from {args.negatives_from[0]} {args.negatives_from[1]}", f"--threshold {args.threshold}",
         f"--validation-share {args.validation_share}", f"--validation-pool {args.validation_pool}",
         *[f"--loss-option {o}" for o in args.loss_option],
         *([f"--validate-every {args.validate_every}"] if args.validate_every else []),
         *([f"--precision {args.precision}"] if args.precision != "fp32" else []),
         *([f"--average-checkpoints {args.average_checkpoints}"] if args.average_checkpoints != 1 else []),
         *([f"--positives-per-query {args.positives_per_query}"] if args.positives_per_query else []),
         *([f"--confirm-level {args.confirm_level:g}"] if args.confirm_level != 1 else []),
         *([f"--splits {' '.join(args.splits)}"] if args.splits != ["dev"] else [])]
    )
    if args.infonce_from is not None:
        command += f" --infonce-from {shown(args.infonce_from)}"
    if args.work.resolve() != DEFAULT_WORK:
        command += f" --work {shown(args.work)}"
    timing = f"Time: {minutes:.0f} min for the whole script this time (median training run {median_train:.0f} s)."
    if args.measured_on:
        timing = (f"Time: the runs were made on the machine above by benchmarks/device/run.sh (median training run "
                  f"{median_train:.0f} s, validation included); this command only read them and wrote the table.")
    append_section(
        "Losses on NFCorpus graded qrels",
        command,
        f"Data: trained on NFCorpus {' + '.join(args.splits)} ({TRAINING_QUERIES[tuple(args.splits)]}, human-judged, "
        f"plus {args.negatives} mined grade-0 documents per query), {args.steps} steps of {args.batch_size} queries x {args.list_size} documents "
        f"({args.steps * args.batch_size} training lists per run"
        f"{', bfloat16 mixed precision' if args.precision != 'fp32' else ''}"
        f"{f', at most {args.positives_per_query} rows per query' if args.positives_per_query else ''}), evaluated on the full test split (323 queries, "
        f"3,633 documents); {len(args.seeds)} seeds; {args.validation_share:.0%} of the training queries held out for "
        f"choosing among base, tuned and their interpolations, each judged by the base model's top {args.validation_pool} "
        f"(human grade, else 0; queries with no relevant document there left out), as the pipeline judges its held-out queries"
        f"{f' (tuned: the best of the checkpoints scored every {args.validate_every} steps; α@step in the table)' if args.validate_every else ''}"
        f"{f'; the average of the {args.average_checkpoints} best-scoring checkpoints a candidate too (α@avg(steps) where it won)' if args.average_checkpoints > 1 else ''}.  \n"
        f"{timing}",
        table,
        machine=args.measured_on,
    )

if __name__ == "__main__":
    main()
