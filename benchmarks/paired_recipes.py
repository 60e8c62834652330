"""Two recipes that differ in one or two settings, run for run: what the change does. Read from finished runs.

Two ``benchmarks/losses_nfcorpus.py --work`` folders (A and B) hold for each seed and loss
the validation nDCG@10 of every scored checkpoint and of every interpolation
(``training.json``'s ``selection``), the training time, and the test figures of the model
each run handed back (``eval.json``). This script trains and encodes nothing; per run
found in both it reports

    validation gap = B's validation nDCG@10 − A's, at each checkpoint and each α
    test gap       = B's test nDCG@10 − A's, with a paired randomisation test

and the ratio of training times. Same seed, same batches in the same order: where the
change leaves training alone (e.g. ``--average-checkpoints``, which only adds a candidate
to the selection) the checkpoint gaps are zero and the test gap is the selection's doing;
where it changes training (``--precision``) the checkpoint gaps measure that.

    .venv/bin/python benchmarks/paired_recipes.py A_WORK B_WORK

(Named ``precision_agreement.py`` until 2026-12-06, when it compared precisions only.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from gradir.evaluation.compare import compare_per_query
from gradir.training.selection import average_label, tuned_source
from results_file import append_section

ROOT = Path(__file__).resolve().parents[1]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="losses_nfcorpus.py --work folder of recipe A")
    parser.add_argument("second", type=Path, help="the folder of recipe B: A with one or two settings changed")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


def changed_settings(first: Path, second: Path) -> dict[str, tuple]:
    """{setting: (A's value, B's value)} for the settings the two folders' recipes differ in (at least one)."""
    a = json.loads((first / "settings.json").read_text())
    b = json.loads((second / "settings.json").read_text())
    changed = {k: (a.get(k, "unset"), b.get(k, "unset")) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    if not changed:
        raise SystemExit(f"{first} and {second} hold the same recipe: nothing to compare")
    return changed


def test_record(work: Path, run: Path, selection: dict) -> dict:
    """The handed-back model's test figures; a run that handed back the base scores as the base."""
    source = work / "base" if selection.get("output") == "base" else run
    return json.loads((source / "eval.json").read_text())


def paired_runs(first: Path, second: Path) -> list[tuple[str, dict, dict, dict, dict]]:
    """(run name, A's training.json, B's, A's eval, B's eval) for runs finished in both."""
    pairs = []
    for run in sorted(p.parent.name for p in first.glob("*/training.json")):
        if not (second / run / "training.json").is_file():
            continue
        trained = [json.loads((w / run / "training.json").read_text()) for w in (first, second)]
        tests = [test_record(w, w / run, t["selection"]) for w, t in zip((first, second), trained)]
        pairs.append((run, *trained, *tests))
    if not pairs:
        raise SystemExit(f"no run is finished in both {first} and {second}")
    return pairs


def render_table(pairs: list[tuple[str, dict, dict, dict, dict]]) -> str:
    lines = [
        "| run | checkpoints | validation gap, mean (largest) | interpolation gap, mean (largest) | chosen A → B "
        "| average of checkpoints A; B (validation) | test nDCG@10 A → B | test gap | p (rand.) | training s A → B |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    all_gaps, ratios, test_gaps = [], [], []
    for run, first, second, first_test, second_test in pairs:
        checkpoint_gaps = [b["ndcg@10"] - a["ndcg@10"]
                           for a, b in zip(first["selection"]["epochs"], second["selection"]["epochs"])]
        interpolation_gaps = [b["ndcg@10"] - a["ndcg@10"]
                              for a, b in zip(first["selection"]["interpolation"], second["selection"]["interpolation"])]
        all_gaps += checkpoint_gaps
        test = compare_per_query(first_test["per_query"], second_test["per_query"], "ndcg@10")
        test_gaps.append(test.delta)
        ratios.append(first["seconds"] / second["seconds"])
        lines.append(
            f"| {run} | {len(checkpoint_gaps)} | {describe(checkpoint_gaps)} | {describe(interpolation_gaps)} "
            f"| {chosen(first['selection'])} → {chosen(second['selection'])} "
            f"| {averaged(first['selection'])}; {averaged(second['selection'])} "
            f"| {first_test['metrics']['ndcg@10'] * 100:.2f} → {second_test['metrics']['ndcg@10'] * 100:.2f} "
            f"| {test.delta * 100:+.2f} | {test.p_randomization:.3f} | {first['seconds']:.0f} → {second['seconds']:.0f} |"
        )
    summary = (f"Over {len(all_gaps)} checkpoints of {len(pairs)} runs: validation gap mean {statistics.fmean(all_gaps) * 100:+.2f}, "
               f"mean absolute {statistics.fmean(abs(g) for g in all_gaps) * 100:.2f}, largest {max(all_gaps, key=abs) * 100:+.2f} "
               f"nDCG@10 points; test gap mean {statistics.fmean(test_gaps) * 100:+.2f}; "
               f"training time ratio A / B, median {statistics.median(ratios):.2f}×.")
    return "\n".join(lines) + "\n\n" + summary


def describe(gaps: list[float]) -> str:
    return f"{statistics.fmean(gaps) * 100:+.2f} ({max(gaps, key=abs) * 100:+.2f})" if gaps else "-"


def averaged(selection: dict) -> str:
    """The scored average of the best checkpoints: its steps, its validation nDCG@10 and whether it was chosen."""
    scored = selection.get("average")
    if not scored:
        return "-"
    return (f"{average_label(scored['steps'])} {scored['ndcg@10'] * 100:.2f}"
            f"{' chosen' if scored['chosen'] else ' not chosen'}")


def chosen(selection: dict) -> str:
    """base, or α with what it interpolates: the checkpoint's step or avg(steps) (selection.tuned_source)."""
    if selection.get("output") == "base":
        return "base"
    source = tuned_source(selection)
    return f"α {selection['alpha']:g}" + (f"@{source}" if source else "")


def main() -> None:
    args = parse_arguments()
    changed = changed_settings(args.first, args.second)
    table = render_table(paired_runs(args.first, args.second))
    print(table)
    if not args.no_record:
        relative = [os.path.relpath(p.resolve(), ROOT) for p in (args.first, args.second)]
        described = "; ".join(f"{name} {a} → {b}" for name, (a, b) in changed.items())
        append_section(
            f"Paired recipes on NFCorpus: {described}",
            f"python benchmarks/paired_recipes.py {' '.join(relative)}",
            f"Reads two losses_nfcorpus.py work folders whose recipes differ in {described} (A → B); trains "
            "nothing. Gaps are B − A in nDCG@10 points: on the held-out validation queries at each scored "
            "checkpoint and each interpolation α, and on the test split for the model each run handed back "
            "(paired randomisation test over the 323 test queries).",
            table,
        )


if __name__ == "__main__":
    main()
