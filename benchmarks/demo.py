"""`make demo` on a fresh clone: wall time, peak memory and the base/tuned figures.

Expected run time on 2 CPU cores: about 30 minutes (set-up from the pip cache, then the
pipeline of configs/demo-scifact.toml), or 40 minutes where llama.cpp must be compiled.

    python benchmarks/demo.py [--keep]

The repository's committed state (HEAD) is cloned into a temporary folder with
``../shared`` linked beside it, and ``make demo`` runs there with an empty embedding and
LLM cache (``GRADIR_CACHE_DIR`` points into the clone). Peak memory is the largest
resident set of any process of the run (``getrusage(RUSAGE_CHILDREN).ru_maxrss``). The
second ``make demo`` in the same clone measures the all-skipped re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

from gradir.pipeline.config import MineSection
from results_file import append_section

ROOT = Path(__file__).resolve().parents[1]


def timed_make(clone: Path, env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        completed = subprocess.run(["make", "demo"], cwd=clone, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        raise SystemExit(f"make demo failed (exit {completed.returncode}); see {log}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone (its demo-output/ and report)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gradir-demo-"))
    clone = work / "main"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    (work / "shared").symlink_to(ROOT.parent / "shared")
    env = {**os.environ, "GRADIR_CACHE_DIR": str(clone / ".demo-cache")}
    env.pop("VIRTUAL_ENV", None)
    first = timed_make(clone, env, work / "first.log")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    second = timed_make(clone, env, work / "second.log")
    comparison = json.loads((clone / "demo-output" / "eval" / "comparison.json").read_text())
    demo = tomllib.loads((clone / "configs" / "demo-scifact.toml").read_text())
    state = json.loads((clone / "demo-output" / "state.json").read_text())["stages"]
    stage_seconds = {name: entry["seconds"] for name, entry in state.items()}
    setup = first - sum(stage_seconds.values())
    base, tuned = comparison["base"]["ndcg@10"], comparison["tuned"]["ndcg@10"]
    test = comparison["paired_tests"]["ndcg@10"]
    rows = [
        ("make demo, fresh clone (set-up + pipeline)", f"{first / 60:.1f} min"),
        ("  of which set-up (venv, installs)", f"{setup / 60:.1f} min"),
        *[(f"  stage {name}", f"{seconds:.0f} s") for name, seconds in stage_seconds.items()],
        ("peak memory (largest process)", f"{peak_mb:,.0f} MB"),
        ("make demo again (every stage skipped)", f"{second:.1f} s"),
        ("SciFact test nDCG@10, base", f"{base:.4f}"),
        ("SciFact test nDCG@10, tuned", f"{tuned:.4f}"),
        ("Δ nDCG@10 (wins / losses / ties; p randomisation)",
         f"{tuned - base:+.4f} ({test['wins']} / {test['losses']} / {test['ties']}; p = {test['p_randomization']:.3f})"),
        ("SciFact test Recall@100, base → tuned",
         f"{comparison['base']['recall@100']:.4f} → {comparison['tuned']['recall@100']:.4f}"),
    ]
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    print(table)
    append_section(
        "make demo (issue 6 main job)",
        "python benchmarks/demo.py",
        "A fresh clone of HEAD, `make demo` twice, empty caches. Config: configs/demo-scifact.toml "
        f"({demo['generate']['passages']} passages, one query each, {demo['mine']['top_k']} mined candidates "
        f"({demo['mine'].get('validation_top_k', MineSection().validation_top_k)} for the held-out validation queries) graded "
        "by SmolLM2-135M, BiXSE two epochs, evaluation on the full SciFact test split).",
        table,
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"clone kept in {clone}")


if __name__ == "__main__":
    main()
