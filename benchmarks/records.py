"""Keep the small records of finished benchmark runs in git, so that a new checkout reuses them.

A benchmark's ``--work`` folder (under ``benchmarks/work/``, which git ignores) holds
models, caches and embeddings: gigabytes, lost with the checkout. The tables and paired
tests read only a few small JSON files of each finished run, and every script skips a
run whose record is there:

- ``losses_nfcorpus.py`` (and ``paired_recipes.py``): ``settings.json``, and per run
  ``training.json`` (steps, time, the validation curve and the choice) and ``eval.json``
  (test metrics and per-query scores); ``selection_confirmation.py``'s ``validation_per_query.json``
  (held-out nDCG@10 per query of a run's output model, and of the base in ``base/``);
- ``synthetic_scifact.py``: ``benchmark.json`` per variant (and per seed);
- ``train_sweep.py``: ``row.json`` per recipe and seed.

``save`` copies those files of a work folder to ``benchmarks/records/<folder name>/``
(same relative paths; commit them), ``restore`` copies them back into
``benchmarks/work/<folder name>/`` without overwriting anything there. A restored run
is reused as it stands; a new run or variant still trains (and ``synthetic_scifact.py``
needs its reference run's folder, which is not a record, to start a new variant).

    python benchmarks/records.py save benchmarks/work/losses_nf300_devtrain_pool20
    python benchmarks/records.py restore losses_nf300_devtrain_pool20
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from gradir.atomic import atomic_path

ROOT = Path(__file__).resolve().parent
RECORDS = ROOT / "records"
WORK = ROOT / "work"
RECORD_NAMES = {"settings.json", "training.json", "eval.json", "benchmark.json", "row.json", "validation_per_query.json"}
MAX_RECORD_BYTES = 1_000_000  # a record is a summary; anything larger is a model or cache file of the same name


def record_files(folder: Path) -> list[Path]:
    """The record files under ``folder`` (relative paths), outside checkpoints and caches."""
    found = []
    for path in sorted(folder.rglob("*.json")):
        relative = path.relative_to(folder)
        if path.name not in RECORD_NAMES or path.stat().st_size > MAX_RECORD_BYTES:
            continue
        if any(part.startswith("checkpoint-") or part in {"cache", "model"} for part in relative.parts[:-1]):
            continue
        found.append(relative)
    return found


def copy_records(source: Path, target: Path, *, overwrite: bool) -> tuple[int, int]:
    """Copy ``source``'s record files to the same paths under ``target``: (copied, left as they were)."""
    copied = kept = 0
    for relative in record_files(source):
        destination = target / relative
        if destination.exists() and not overwrite:
            kept += 1
            continue
        with atomic_path(destination) as temporary:
            shutil.copyfile(source / relative, temporary)
        copied += 1
    return copied, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    save = commands.add_parser("save", help="copy a work folder's records to benchmarks/records/")
    save.add_argument("work", type=Path, help="a benchmark's --work folder")
    restore = commands.add_parser("restore", help="copy records back into benchmarks/work/")
    restore.add_argument("name", help="a folder name under benchmarks/records/")
    args = parser.parse_args()
    if args.command == "save":
        if not args.work.is_dir():
            raise SystemExit(f"{args.work}: no such folder")
        target = RECORDS / args.work.resolve().name
        copied, _ = copy_records(args.work, target, overwrite=True)
        print(f"{copied} record files from {args.work} in {target.relative_to(ROOT.parent)}")
    else:
        source = RECORDS / args.name
        if not source.is_dir():
            raise SystemExit(f"{source}: no such record folder (see benchmarks/records/)")
        copied, kept = copy_records(source, WORK / args.name, overwrite=False)
        print(f"{copied} record files restored to benchmarks/work/{args.name}, {kept} already there left alone")


if __name__ == "__main__":
    main()
