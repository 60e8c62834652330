"""Would a significance test on the held-out queries have kept the tuned models that lost on test?

The selection hands back whichever candidate (base, checkpoints, interpolations) scores the
highest mean nDCG@10 on the held-out queries, so a small held-out edge, won by choosing the
best of a dozen candidates on the same queries, is enough to hand back a tuned model. This
script replays, on finished runs of ``benchmarks/losses_nfcorpus.py``, a stricter rule:

    hand back the chosen model only if it beats the base on the held-out queries in a
    one-sided paired randomisation test at level ``--level``; else hand back the base

(the test of ``gradir train --confirm-level``: ``gradir.training.selection.confirmation_test``).

For each run that handed back a tuned or interpolated model it re-scores the saved output
model and the base on the run's own validation file (per query, condensed nDCG@10, as the
selection scored them; the re-scored mean must match the one ``training.json`` recorded)
and tests the difference. A run the rule sends back to the base then scores the base on
test (Δ test 0); the others keep their test figure. Re-scoring costs one encoding of the
held-out queries' judged documents per model; per-query scores are cached in each run
folder (``validation_per_query.json``, the base's in ``base/``, keyed by the validation file's
content), records that ``benchmarks/records.py`` keeps, so a fresh checkout prints the table
without the models.

The p-value is optimistic: the candidate was chosen on the same queries it is tested on.

``--pipeline-run DIR`` adds a finished ``gradir run`` output folder (e.g. ``demo-output``): its
held-out queries are drawn again as its train stage drew them (same judgments, source
passages, share and seed), and its test gain is read from ``eval/comparison.json``.

    .venv/bin/python benchmarks/selection_confirmation.py [WORK ...] [--pipeline-run DIR ...] [--level 0.05]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sentence_transformers import SentenceTransformer  # noqa: E402

from gradir.atomic import write_text_atomic  # noqa: E402
from gradir.collections import load_collection  # noqa: E402
from gradir.grading.judgments import read_judgments  # noqa: E402
from gradir.models import resolve_model_path  # noqa: E402
from gradir.training.selection import confirmation_test  # noqa: E402
from gradir.training.validation import validation_set  # noqa: E402
from results_file import append_section  # noqa: E402
from selection_agreement import recipe_folders  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NFCORPUS = ROOT.parent / "shared" / "data" / "beir" / "nfcorpus"


@dataclass(frozen=True)
class ConfirmedRun:
    recipe: str
    loss: str
    seed: str
    alpha: float
    validation_gain: float  # as training.json recorded it
    rescored_gain: float
    wins: int
    losses: int
    p: float  # one-sided paired randomisation test, tuned > base, on the held-out queries
    test_gain: float

    def kept(self, level: float) -> bool:
        return self.alpha > 0 and self.p < level

    def gated_test_gain(self, level: float) -> float:
        return self.test_gain if self.kept(level) else 0.0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, nargs="*", help="losses_nfcorpus.py --work folders (default: all under benchmarks/work)")
    parser.add_argument("--level", type=float, default=0.05, help="significance level of the one-sided test")
    parser.add_argument("--pipeline-run", type=Path, action="append", default=[], metavar="DIR",
                        help="a finished `gradir run` output folder to replay too (repeatable)")
    parser.add_argument("--data", type=Path, default=NFCORPUS, help="the NFCorpus folder (BEIR layout)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


def cached_per_query(path: Path, validation_file: Path, model_path: Path, validation) -> dict[str, float]:
    """Per-query validation nDCG@10 of the model at ``model_path``, cached in ``path`` per validation file content."""
    cached = json.loads(path.read_text()) if path.is_file() else {}
    key = hashlib.sha256(validation_file.read_bytes()).hexdigest()
    if key not in cached:
        model = SentenceTransformer(str(model_path), local_files_only=True)
        cached[key] = validation.per_query(model)
        write_text_atomic(path, json.dumps(cached))
    return cached[key]


def read_runs(folder: Path, collection) -> list[ConfirmedRun]:
    """Every finished, test-evaluated run in ``folder`` with a validation set, re-scored when it handed back a tuned model."""
    base_test = json.loads((folder / "base" / "eval.json").read_text())["metrics"]["ndcg@10"]
    validations: dict[Path, object] = {}
    runs = []
    for run in sorted(folder.glob("*-seed*")):
        if not (run / "training.json").is_file():
            continue
        selection = json.loads((run / "training.json").read_text()).get("selection")
        if not selection or (selection["output"] != "base" and not (run / "eval.json").is_file()):
            continue
        loss, seed = run.name.rsplit("-seed", 1)
        recorded = selection["score"] - selection["base"]
        if selection["output"] == "base":
            runs.append(ConfirmedRun(folder.name, loss, seed, 0.0, recorded, recorded, 0, 0, 1.0, 0.0))
            continue
        validation_file = Path(selection["validation"]["file"])
        validation_file = validation_file if validation_file.is_absolute() else ROOT / validation_file
        if validation_file not in validations:
            validations[validation_file] = validation_set(read_judgments(validation_file), collection.documents)
        validation = validations[validation_file]
        base = cached_per_query(folder / "base" / "validation_per_query.json", validation_file,
                                resolve_model_path(None), validation)
        tuned = cached_per_query(run / "validation_per_query.json", validation_file, run, validation)
        comparison = confirmation_test(base, tuned)
        if abs(statistics.fmean(base.values()) - selection["base"]) > 1e-6:
            raise SystemExit(f"{run}: the base re-scores {statistics.fmean(base.values()):.6f} on {validation_file}, "
                             f"training.json recorded {selection['base']:.6f}")
        test = json.loads((run / "eval.json").read_text())["metrics"]["ndcg@10"]
        runs.append(ConfirmedRun(folder.name, loss, seed, selection["alpha"], recorded, comparison.delta,
                                 comparison.wins, comparison.losses, comparison.p_randomization, test - base_test))
    return runs


def read_pipeline_run(run_dir: Path) -> ConfirmedRun:
    """A ``gradir run`` output folder, its held-out queries drawn again as its train stage drew them."""
    from gradir.pipeline.stages import source_passages_in, synthetic_documents_in
    from gradir.training.assemble import resolve_threshold
    from gradir.training.validation import hold_out

    training = json.loads((run_dir / "model" / "training.json").read_text())
    settings, selection = training["settings"], training["selection"]
    comparison = json.loads((run_dir / "eval" / "comparison.json").read_text())
    test_gain = comparison["tuned"]["ndcg@10"] - comparison["base"]["ndcg@10"]
    name, seed = f"pipeline run {run_dir.name}", str(settings["seed"])
    recorded = selection["score"] - selection["base"]
    if selection["output"] == "base":
        return ConfirmedRun(name, training["loss"], seed, 0.0, recorded, recorded, 0, 0, 1.0, test_gain)
    collection = load_collection(settings["collection"])
    documents = {**collection.documents, **synthetic_documents_in(run_dir)}
    judgments = read_judgments(run_dir / "judgments.parquet", set(documents), collection.log)
    _, validation = hold_out(judgments, documents, share=settings["validation_share"], groups=source_passages_in(run_dir),
                             threshold=resolve_threshold(judgments, settings["threshold"]), seed=settings["seed"])
    if validation is None or validation.describe() != selection["validation"]:
        raise SystemExit(f"{run_dir}: the held-out queries drawn again differ from the ones its train stage recorded")
    base = validation.per_query(SentenceTransformer(settings["base_model"], local_files_only=True))
    tuned = validation.per_query(SentenceTransformer(str(run_dir / "model"), local_files_only=True))
    test = confirmation_test(base, tuned)
    return ConfirmedRun(name, training["loss"], seed, selection["alpha"], recorded, test.delta, test.wins, test.losses,
                        test.p_randomization, test_gain)


def render_table(runs: list[ConfirmedRun], level: float) -> str:
    lines = [f"| recipe (work folder) | loss | seed | α | Δ validation (recorded / re-scored) | wins/losses | "
             f"p (one-sided) | Δ test | kept at p < {level:g} | Δ test under the rule |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        scored = f"{r.validation_gain * 100:+.2f} / {r.rescored_gain * 100:+.2f}" if r.alpha > 0 else "base handed back"
        p = f"{r.p:.4f}" if r.alpha > 0 else ""
        record = f"{r.wins}/{r.losses}" if r.alpha > 0 else ""
        kept = ("yes" if r.kept(level) else "**no: base**") if r.alpha > 0 else ""
        lines.append(f"| {r.recipe} | {r.loss} | {r.seed} | {r.alpha:g} | {scored} | {record} | {p} | "
                     f"{r.test_gain * 100:+.2f} | {kept} | {r.gated_test_gain(level) * 100:+.2f} |")
    return "\n".join(lines) + "\n\n" + summary(runs, level)


def summary(runs: list[ConfirmedRun], level: float) -> str:
    tuned = [r for r in runs if r.alpha > 0]
    if not tuned:
        return "No run handed back a tuned model."
    dropped = [r for r in tuned if not r.kept(level)]
    lost_gains = [r for r in dropped if r.test_gain > 0]
    caught = [r for r in dropped if r.test_gain < 0]
    slipped = [r for r in tuned if r.kept(level) and r.test_gain < 0]
    mismatch = max(abs(r.validation_gain - r.rescored_gain) for r in tuned) * 100
    means = []
    for recipe, loss in sorted({(r.recipe, r.loss) for r in runs}):
        members = [r for r in runs if (r.recipe, r.loss) == (recipe, loss)]
        if len(members) >= 2:
            means.append(f"{recipe} {loss} ({len(members)} seeds): {statistics.fmean(r.test_gain for r in members) * 100:+.2f}"
                         f" → {statistics.fmean(r.gated_test_gain(level) for r in members) * 100:+.2f}")
    return (
        f"{len(tuned)} of {len(runs)} runs handed back a tuned or interpolated model (largest difference between the "
        f"recorded and the re-scored validation gain: {mismatch:.4f} points). At p < {level:g} the rule keeps "
        f"{len(tuned) - len(dropped)} and sends {len(dropped)} back to the base: {len(caught)} of those lost on test "
        f"(Δ {', '.join(f'{r.test_gain * 100:+.2f}' for r in caught) or 'none'}), {len(lost_gains)} gained "
        f"(Δ {', '.join(f'{r.test_gain * 100:+.2f}' for r in lost_gains) or 'none'}). Kept but lost on test: "
        f"{len(slipped)}{' (Δ ' + ', '.join(f'{r.test_gain * 100:+.2f}' for r in slipped) + ')' if slipped else ''}. "
        f"Mean Δ test over all {len(runs)} runs, as run → under the rule: "
        f"{statistics.fmean(r.test_gain for r in runs) * 100:+.3f} → {statistics.fmean(r.gated_test_gain(level) for r in runs) * 100:+.3f}. "
        f"Mean Δ test over seeds, as run → under the rule: {'; '.join(means) or 'fewer than 2 seeds per loss'}."
    )


def main() -> None:
    args = parse_arguments()
    folders = recipe_folders(args.work)
    collection = load_collection(args.data)
    runs = [run for folder in folders for run in read_runs(folder, collection)]
    runs += [read_pipeline_run(run_dir) for run_dir in args.pipeline_run]
    table = render_table(runs, args.level)
    print(table)
    if not args.no_record:
        command = "python benchmarks/selection_confirmation.py"
        if args.work:
            command += " " + " ".join(os.path.relpath(f.resolve(), ROOT) for f in folders)
        command += "".join(f" --pipeline-run {d}" for d in args.pipeline_run)
        if args.level != 0.05:
            command += f" --level {args.level:g}"
        append_section(
            "A significance test before handing back a tuned model, replayed on NFCorpus runs",
            command,
            f"Data: every finished run under {len(folders)} recipe folders of benchmarks/losses_nfcorpus.py"
            f"{f' and {len(args.pipeline_run)} gradir run output folder(s) (its own collection and test split)' if args.pipeline_run else ''}; "
            "the saved output model and the base re-scored on each run's own held-out queries (condensed nDCG@10, "
            "per query); one-sided paired randomisation test, 10,000 resamples. Test: the full NFCorpus test split, "
            "from each run's eval.json. No training.",
            table,
        )


if __name__ == "__main__":
    main()
