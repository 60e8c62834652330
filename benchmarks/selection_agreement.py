"""Does the held-out validation gain predict the test gain? Pooled over finished runs.

Every run of ``benchmarks/losses_nfcorpus.py`` keeps, in its ``--work`` folder, the
selection it made (``training.json``: validation nDCG@10 of the base and of the model
handed back) and the test figures (``eval.json``; a run that handed back the base scores
as the base). This script reads every such run under the folders given, without training
or encoding anything, and reports per run

    Δ validation = validation nDCG@10 of the model handed back − the base's on the same queries
    Δ test       = test nDCG@10 of the model handed back − the base's on the test split

and, pooled over runs, the Spearman rank correlation of Δ validation with Δ test (and,
within each seed, across recipes: whether validation ranks recipes as test does), how
often a positive Δ validation came with a positive Δ test, and the mean optimism
(Δ validation − Δ test; choosing the best of a grid on 65 queries flatters the winner).
Differences, not levels: each seed holds out other queries, so validation levels differ
by seed (base 34.7–38.7) while the differences are comparable.

    .venv/bin/python benchmarks/selection_agreement.py [WORK ...]

With no folder given it reads every folder under benchmarks/work that holds a
``settings.json`` (one recipe each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from results_file import append_section

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work"


@dataclass(frozen=True)
class RunAgreement:
    recipe: str
    run: str
    seed: str
    alpha: float
    validation_gain: float
    test_gain: float


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, nargs="*", help="losses_nfcorpus.py --work folders (default: all under benchmarks/work)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


def recipe_folders(given: list[Path]) -> list[Path]:
    folders = given or sorted(p.parent for p in WORK.glob("*/settings.json"))
    missing = [str(f) for f in folders if not (f / "settings.json").is_file()]
    if missing:
        raise SystemExit(f"not a losses_nfcorpus.py --work folder (no settings.json): {', '.join(missing)}")
    return folders


def read_runs(folder: Path) -> list[RunAgreement]:
    """One entry per finished run in ``folder`` that held out validation queries."""
    base_test = json.loads((folder / "base" / "eval.json").read_text())["metrics"]["ndcg@10"]
    runs = []
    for run in sorted(folder.glob("*-seed*")):
        training = run / "training.json"
        if not training.is_file():
            continue  # unfinished
        selection = json.loads(training.read_text()).get("selection")
        if not selection:
            continue  # trained without a validation set
        if selection["output"] == "base":
            test = base_test
        elif (run / "eval.json").is_file():
            test = json.loads((run / "eval.json").read_text())["metrics"]["ndcg@10"]
        else:
            continue  # trained, not yet evaluated on test
        runs.append(RunAgreement(
            recipe=folder.name, run=run.name, seed=run.name.rsplit("seed", 1)[1], alpha=selection["alpha"],
            validation_gain=selection["score"] - selection["base"], test_gain=test - base_test,
        ))
    return runs


def gain_correlation(runs: list[RunAgreement]) -> tuple[float, float]:
    """Spearman ρ of the validation gains with the test gains, and its p-value."""
    from scipy.stats import spearmanr

    rho, p = spearmanr([r.validation_gain for r in runs], [r.test_gain for r in runs])
    return rho, p


def summary(runs: list[RunAgreement]) -> str:
    if len(runs) < 3:
        return "Fewer than 3 runs with a validation set: no correlation."
    rho, p = gain_correlation(runs)
    tuned = [r for r in runs if r.alpha > 0]
    helped = sum(r.test_gain > 0 for r in tuned)
    optimism = statistics.fmean(r.validation_gain - r.test_gain for r in tuned) * 100 if tuned else 0.0
    tuned_only = ""
    if len(tuned) >= 3:  # the base's hand-backs are ties at (0, 0), which flatter ρ
        rho_tuned, p_tuned = gain_correlation(tuned)
        tuned_only = f" (over those alone: ρ = {rho_tuned:.2f}, p = {p_tuned:.3f})"
    return (
        f"Over {len(runs)} runs: Spearman ρ(Δ validation, Δ test) = {rho:.2f} (p = {p:.3f}). "
        f"{within_seed(runs)} "
        f"{len(tuned)} runs handed back a tuned or interpolated model{tuned_only}; {helped} of them gained on test; "
        f"mean Δ validation − Δ test over those = {optimism:+.2f} points. "
        f"{len(runs) - len(tuned)} handed back the base (Δ test 0 by construction)."
    )


def within_seed(runs: list[RunAgreement]) -> str:
    """ρ across recipes among the runs of one seed: does validation rank the recipes as test does?

    A seed fixes the held-out queries (and so the training queries), which moves both gains
    together; the pooled ρ mixes that with the recipe's effect, the within-seed ρ does not.
    """
    by_seed: dict[str, list[RunAgreement]] = {}
    for run in runs:
        by_seed.setdefault(run.seed, []).append(run)
    parts = []
    for seed, members in sorted(by_seed.items()):
        if len(members) >= 3:
            rho, p = gain_correlation(members)
            parts.append(f"seed {seed}: ρ = {rho:.2f} (p = {p:.3f}, {len(members)} runs)")
    return "Within one seed, across recipes: " + ("; ".join(parts) if parts else "fewer than 3 runs per seed") + "."


def render_table(runs: list[RunAgreement]) -> str:
    lines = ["| recipe (work folder) | run | α | Δ validation nDCG@10 | Δ test nDCG@10 |", "|---|---|---|---|---|"]
    lines += [
        f"| {r.recipe} | {r.run} | {r.alpha:g} | {r.validation_gain * 100:+.2f} | {r.test_gain * 100:+.2f} |" for r in runs
    ]
    return "\n".join(lines) + "\n\n" + summary(runs)


def main() -> None:
    args = parse_arguments()
    folders = recipe_folders(args.work)
    runs = [run for folder in folders for run in read_runs(folder)]
    table = render_table(runs)
    print(table)
    if not args.no_record:
        command = "python benchmarks/selection_agreement.py"
        if args.work:
            command += " " + " ".join(os.path.relpath(f.resolve(), ROOT) for f in folders)
        append_section(
            "Validation gain against test gain, pooled over NFCorpus runs",
            command,
            f"Data: every finished run under {len(folders)} recipe folders of benchmarks/losses_nfcorpus.py "
            "(each held out 20% of its own training queries, dev or dev + train, for the selection, as its section says; "
            "test: the full test split). "
            "No training or encoding: read from the runs' training.json and eval.json.",
            table,
        )


if __name__ == "__main__":
    main()
