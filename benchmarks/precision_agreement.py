"""Does bf16 mixed-precision training give the models fp32 training gives? Read from finished runs.

Two ``benchmarks/losses_nfcorpus.py --work`` folders of one recipe, one trained with
``--precision fp32`` and one with ``--precision bf16``, hold for each seed and loss the
validation nDCG@10 of every scored checkpoint and of every interpolation
(``training.json``'s ``selection``), the training time, and the test figures of the model
each run handed back (``eval.json``). This script trains and encodes nothing; per run it
reports

    validation gap = bf16's validation nDCG@10 − fp32's, at each checkpoint and each α
    test gap       = bf16's test nDCG@10 − fp32's, with a paired randomisation test

and the ratio of training times. The checkpoints see the same batches in the same order
(same seed), so the validation gaps measure what the precision changes in the model; the
test gap adds what the selection makes of those gaps (a choice between near-tied
candidates can flip).

    .venv/bin/python benchmarks/precision_agreement.py FP32_WORK BF16_WORK
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from gradir.evaluation.compare import compare_per_query
from results_file import append_section

ROOT = Path(__file__).resolve().parents[1]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fp32", type=Path, help="losses_nfcorpus.py --work folder trained in fp32")
    parser.add_argument("bf16", type=Path, help="the same recipe's folder trained with --precision bf16")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


def check_same_recipe(fp32: Path, bf16: Path) -> None:
    """The two folders' settings differ in the precision alone."""
    first = json.loads((fp32 / "settings.json").read_text())
    second = json.loads((bf16 / "settings.json").read_text())
    if second.pop("precision", "fp32") != "bf16" or first.pop("precision", "fp32") != "fp32":
        raise SystemExit(f"{fp32} must hold fp32 runs and {bf16} bf16 runs (their settings.json say otherwise)")
    if first != second:
        changed = sorted(k for k in set(first) | set(second) if first.get(k) != second.get(k))
        raise SystemExit(f"the two folders hold different recipes (they differ in {', '.join(changed)})")


def test_record(work: Path, run: Path, selection: dict) -> dict:
    """The handed-back model's test figures; a run that handed back the base scores as the base."""
    source = work / "base" if selection.get("output") == "base" else run
    return json.loads((source / "eval.json").read_text())


def paired_runs(fp32: Path, bf16: Path) -> list[tuple[str, dict, dict, dict, dict]]:
    """(run name, fp32 training.json, bf16 training.json, fp32 eval, bf16 eval) for runs finished in both."""
    pairs = []
    for run in sorted(p.parent.name for p in fp32.glob("*/training.json")):
        if not (bf16 / run / "training.json").is_file():
            continue
        trained = [json.loads((w / run / "training.json").read_text()) for w in (fp32, bf16)]
        tests = [test_record(w, w / run, t["selection"]) for w, t in zip((fp32, bf16), trained)]
        pairs.append((run, *trained, *tests))
    if not pairs:
        raise SystemExit(f"no run is finished in both {fp32} and {bf16}")
    return pairs


def render_table(pairs: list[tuple[str, dict, dict, dict, dict]]) -> str:
    lines = [
        "| run | checkpoints | validation gap, mean (largest) | interpolation gap, mean (largest) | chosen fp32 → bf16 "
        "| test nDCG@10 fp32 → bf16 | test gap | p (rand.) | training s fp32 → bf16 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    all_gaps, ratios = [], []
    for run, first, second, first_test, second_test in pairs:
        checkpoint_gaps = [b["ndcg@10"] - a["ndcg@10"]
                           for a, b in zip(first["selection"]["epochs"], second["selection"]["epochs"])]
        interpolation_gaps = [b["ndcg@10"] - a["ndcg@10"]
                              for a, b in zip(first["selection"]["interpolation"], second["selection"]["interpolation"])]
        all_gaps += checkpoint_gaps
        test = compare_per_query(first_test["per_query"], second_test["per_query"], "ndcg@10")
        ratios.append(first["seconds"] / second["seconds"])
        lines.append(
            f"| {run} | {len(checkpoint_gaps)} | {describe(checkpoint_gaps)} | {describe(interpolation_gaps)} "
            f"| {chosen(first['selection'])} → {chosen(second['selection'])} "
            f"| {first_test['metrics']['ndcg@10'] * 100:.2f} → {second_test['metrics']['ndcg@10'] * 100:.2f} "
            f"| {test.delta * 100:+.2f} | {test.p_randomization:.3f} | {first['seconds']:.0f} → {second['seconds']:.0f} |"
        )
    summary = (f"Over {len(all_gaps)} checkpoints of {len(pairs)} runs: validation gap mean {statistics.fmean(all_gaps) * 100:+.2f}, "
               f"mean absolute {statistics.fmean(abs(g) for g in all_gaps) * 100:.2f}, largest {max(all_gaps, key=abs) * 100:+.2f} "
               f"nDCG@10 points; training time ratio fp32 / bf16, median {statistics.median(ratios):.2f}×.")
    return "\n".join(lines) + "\n\n" + summary


def describe(gaps: list[float]) -> str:
    return f"{statistics.fmean(gaps) * 100:+.2f} ({max(gaps, key=abs) * 100:+.2f})" if gaps else "-"


def chosen(selection: dict) -> str:
    return "base" if selection.get("output") == "base" else f"α {selection['alpha']:g}@{selection.get('chosen_step')}"


def main() -> None:
    args = parse_arguments()
    check_same_recipe(args.fp32, args.bf16)
    table = render_table(paired_runs(args.fp32, args.bf16))
    print(table)
    if not args.no_record:
        relative = [os.path.relpath(p.resolve(), ROOT) for p in (args.fp32, args.bf16)]
        append_section(
            "Training precision: bf16 mixed precision against fp32, same recipe and seeds",
            f"python benchmarks/precision_agreement.py {' '.join(relative)}",
            "Reads two losses_nfcorpus.py work folders of one recipe that differ in --precision alone; trains "
            "nothing. Gaps are bf16 − fp32 in nDCG@10 points: on the held-out validation queries at each scored "
            "checkpoint and each interpolation α, and on the test split for the model each run handed back "
            "(paired randomisation test over the 323 test queries).",
            table,
        )


if __name__ == "__main__":
    main()
