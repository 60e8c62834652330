"""`gradir run` end to end on a real slice of SciFact with the embedded LLM and model."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import run_cli

from gradir.pipeline import STAGE_NAMES, load_config, render_config
from gradir.pipeline.config import PipelineConfig
from gradir.pipeline.plan import CALLS_PER_QUERY
from gradir.training.validation import held_out_groups

# The first test here may make the shared reference run (several minutes on 2 busy cores).
pytestmark = pytest.mark.timeout(1500)


def _copy_run(root: Path, name: str) -> Path:
    target = root / name
    shutil.copytree(root / "run", target)
    return target


def test_every_stage_runs_and_the_outputs_agree(finished_run, scifact_slice: Path) -> None:
    root, _, summary = finished_run
    stages = summary["stages"]
    assert list(stages) == list(STAGE_NAMES)
    assert all(stage["status"] == "ran" for stage in stages.values())
    run = root / "run"
    # stage outputs are Parquet tables that pyarrow (and so pandas and `datasets`) reads as they are
    generated, kept, judgments, pairs = (pq.read_table(run / name).to_pylist() for name in
                                         ("queries.parquet", "queries.kept.parquet", "judgments.parquet", "pairs.parquet"))
    assert stages["generate"]["summary"]["written"] == len(generated) > 0
    assert {q["query_id"] for q in kept} <= {q["query_id"] for q in generated}
    assert {(j["query_id"], j["doc_id"]) for j in judgments} == {(p["query_id"], p["doc_id"]) for p in pairs}
    # The source passage is graded at least grade.source_floor (3 by default).
    assert all(j["grade"] == 3 for j in judgments if any(p["is_source"] and p["doc_id"] == j["doc_id"] and p["query_id"] == j["query_id"] for p in pairs))
    # Every mined pair carries its BM25 score, and the default labels fuse it with the dense score.
    assert all(isinstance(p["bm25_score"], float) and isinstance(p["score"], float) for p in pairs)
    assert all(j["grader"].endswith("+retriever:0.3+bm25:0.3") for j in judgments if j["grader"] != "source-floor")
    grading = stages["grade"]["summary"]
    check = grading["check"]  # grade.check_queries = 2: the grader on 2 judged queries' base top 10
    assert check["queries"] == 2 and check["pairs"] == 20 and 0.0 <= check["ndcg@10_reranked"] <= 1.0
    assert grading["llm_calls"] + grading["cache_hits"] == len(pairs) + check["pairs"]
    assert stages["train"]["summary"]["steps"] == 4
    # The queries train holds out (20% of the 4 passages: one passage's) are mined deeper than the others.
    defaults = PipelineConfig()
    held = held_out_groups({q["source_doc_id"] for q in kept}, share=defaults.train.validation_share, seed=defaults.run.seed)
    held_queries = {q["query_id"] for q in kept if q["source_doc_id"] in held}
    ranks = {q["query_id"]: {p["rank"] for p in pairs if p["query_id"] == q["query_id"] and not p["is_source"]} for q in kept}
    assert held_queries and max(max(ranks[q]) for q in held_queries) == 4  # mine.validation_top_k = 4
    assert all(max(ranks[q]) <= 3 for q in ranks if q not in held_queries)  # mine.top_k = 3
    assert stages["mine"]["summary"]["validation_queries"] == len(held_queries)
    validation = json.loads((run / "model" / "training.json").read_text())["selection"]["validation"]
    assert 0 < validation["queries"] <= len(held_queries) and validation["groups"] == 1
    # The plan printed before the LLM stages: 4 passages × 2 types, 3 mined candidates, at most 4 steps.
    plan = {row["stage"]: row for row in summary["plan"]["stages"]}
    assert plan["generate"]["work"] == "8 query slots" and plan["generate"]["llm_calls"] >= 8
    assert plan["train"]["work"].startswith("~4 steps") and not any(row["done"] for row in plan.values())
    # The base figure is the one `gradir eval` gives on the same collection.
    evaluated = run_cli("eval", "--collection", scifact_slice, "--lenient", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert stages["evaluate"]["summary"]["ndcg@10"]["base"] == pytest.approx(json.loads(evaluated.stdout)["ndcg@10"], abs=1e-6)
    comparison = json.loads((run / "eval" / "comparison.json").read_text())
    assert comparison["tuned"]["ndcg@10"] == pytest.approx(stages["evaluate"]["summary"]["ndcg@10"]["tuned"], abs=1e-6)
    assert (run / "model" / "model.safetensors").is_file()
    # When the validation hands back the base weights, the tuned evaluation is the base's (nothing re-encoded).
    selection = json.loads((run / "model" / "training.json").read_text())["selection"]
    assert stages["evaluate"]["summary"]["tuned_is_base"] == (selection["output"] == "base")
    report = (run / "report.md").read_text()
    for heading in ("In short", "Base against tuned", "Per-query wins and losses", "Grades", "The grader against the human judgments",
                    "Training", "Query types", "LLM calls and failures", "Sample of generated queries"):
        assert f"## {heading}" in report
    log = (run / "log.txt").read_text()
    assert all(f"{name}: done" in log for name in STAGE_NAMES)
    # The slice has two empty documents and a qrels line naming one: the lenient run says so.
    assert summary["skipped"]["records"] == 3 and len(summary["skipped"]["first"]) == 3
    assert "Lenient run: 3 bad record(s)" in report and "lenient: skipped 3 bad record(s)" in log
    # The report reads its figures in words: the gain and its test, the grader check; 4 steps log 4 points.
    short = report.split("## In short", 1)[1].split("## Base against tuned", 1)[0]
    assert f"nDCG@10 went from {comparison['base']['ndcg@10']:.4f} to {comparison['tuned']['ndcg@10']:.4f}" in short
    assert "Checked against 2 human-judged queries" in short and "no curve to read" not in short
    assert "Ordered by its training labels" in short
    generated = stages["generate"]["summary"]
    slots = generated["written"] + generated["unfilled"]
    assert f"The LLM filled {generated['written']} of {slots} query slots" in report  # yield, in words


def test_a_messy_collection_is_refused_by_a_strict_run_with_a_message_that_names_lenient(scifact_slice: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text(f'[run]\ncollection = "{scifact_slice}"\n', encoding="utf-8")
    refused = run_cli("run", strict, "--out", tmp_path / "run")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "corpus.jsonl" in refused.stderr and "empty" in refused.stderr and "--lenient" in refused.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_rerun_skips_everything_and_a_new_loss_reruns_only_train_evaluate_report(finished_run, tmp_path: Path) -> None:
    root, config, reference = finished_run
    run = _copy_run(root, "rerun")
    again = run_cli("run", config, "--out", run, "--json")
    assert again.returncode == 0, again.stderr
    assert {s["status"] for s in json.loads(again.stdout)["stages"].values()} == {"skipped"}

    changed = Path(str(config).replace(".toml", ".listwise.toml"))
    changed.write_text(config.read_text().replace('loss = "bixse"', 'loss = "listwise_kl"'))
    status = run_cli("status", run, "--config", changed, "--json")
    assert status.returncode == 0, status.stderr
    states = {s["name"]: s["status"] for s in json.loads(status.stdout)["stages"]}
    assert states == {**{n: "done" for n in STAGE_NAMES}, "train": "stale", "evaluate": "stale", "report": "stale"}

    # The dry run prints the plan and writes nothing: the LLM stages are done (free), training is not.
    dry = run_cli("run", changed, "--out", run, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = {row["stage"]: row for row in json.loads(dry.stdout)["plan"]["stages"]}
    assert plan["generate"]["done"] and plan["grade"]["done"] and not plan["train"]["done"]
    assert json.loads(dry.stdout)["plan"]["llm_calls"] == 0 and "Scale with generate.passages" in dry.stderr
    # A new run over the same collection and cache: the corpus' vectors are cached, so encoding them is free.
    fresh = run_cli("run", config, "--out", run.parent / "fresh", "--dry-run", "--json")
    assert fresh.returncode == 0, fresh.stderr
    planned = {row["stage"]: row for row in json.loads(fresh.stdout)["plan"]["stages"]}
    corpus = int(planned["evaluate"]["work"].split("; ")[1].split()[0])
    assert planned["filter"]["work"].endswith(f"{corpus} passages encoded ({corpus} cached)")
    assert planned["filter"]["seconds"] == 0 and not (run.parent / "fresh" / "state.json").exists()
    # ... and every answer the generate stage got is in the LLM call cache: the plan counts them, free.
    made = reference["stages"]["generate"]["summary"]
    answered = made["llm_calls"] + made["cache_hits"] - made["failed"]
    assert planned["generate"]["work"] == f"8 query slots; {answered} answers cached, {made['unfilled']} slots left to write"
    assert planned["generate"]["llm_calls"] == math.ceil(made["unfilled"] * CALLS_PER_QUERY)
    # A grade setting changed after mining: the plan counts the mined pairs' cached scores (only the check is new).
    floor = Path(str(config).replace(".toml", ".floor.toml"))
    floor.write_text(config.read_text() + "source_floor = 2\n")  # the config ends in its [grade] section
    regrade = run_cli("run", floor, "--out", run, "--dry-run", "--json")
    assert regrade.returncode == 0, regrade.stderr
    grade_plan = {row["stage"]: row for row in json.loads(regrade.stdout)["plan"]["stages"]}["grade"]
    pairs = len(pq.read_table(run / "pairs.parquet"))
    assert grade_plan["work"] == f"{pairs} pairs (likelihood); {pairs} cached + 20 check pairs"
    assert grade_plan["llm_calls"] == 20 and not grade_plan["done"]
    # Validation's BM25 index was saved in the run's cache by the first training: the second loads it.
    saved = root / "cache" / "bm25"
    before = (sorted(p.name for p in saved.iterdir()), saved.stat().st_mtime_ns)
    rerun = run_cli("run", changed, "--out", run, "--json")
    assert rerun.returncode == 0, rerun.stderr
    ran = {name for name, s in json.loads(rerun.stdout)["stages"].items() if s["status"] == "ran"}
    assert ran == {"train", "evaluate", "report"}
    assert before[0] and (sorted(p.name for p in saved.iterdir()), saved.stat().st_mtime_ns) == before
    assert json.loads((run / "model" / "training.json").read_text())["loss"] == "listwise_kl"


def test_status_of_a_finished_run(finished_run) -> None:
    root, _, _ = finished_run
    status = run_cli("status", root / "run", "--json")
    assert status.returncode == 0, status.stderr
    stages = json.loads(status.stdout)["stages"]
    assert [s["status"] for s in stages] == ["done"] * len(STAGE_NAMES)
    assert all(s["seconds"] is not None for s in stages)
    cpu = {s["name"]: s["cpu_seconds"] for s in stages}
    assert all(seconds >= 0 for seconds in cpu.values()) and cpu["train"] > 1.0  # training a MiniLM costs CPU
    table = run_cli("status", root / "run")
    assert "grade" in table.stdout and "done" in table.stdout and "CPU seconds" in table.stdout


def test_report_renders_in_headless_chromium(finished_run, tmp_path: Path) -> None:
    root, _, _ = finished_run
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium package is needed for this test (make setup / .ci/run install it)"
    page = (root / "run" / "report.html").resolve().as_uri()
    flags = [chromium, "--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--virtual-time-budget=5000", "--dump-dom", page],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    assert 'data-broken-images="0"' in body
    assert int(re.search(r'data-images="(\d+)"', body).group(1)) == 3  # per-query, grades, training loss
    for section in ("summary", "metrics", "per-query", "grades", "training", "query-types", "llm", "samples"):
        assert f'id="{section}"' in dom.stdout
    assert dom.stdout.count("<details") >= 1
    screenshot = tmp_path / "report.png"
    shot = subprocess.run([*flags, "--window-size=1200,3000", f"--screenshot={screenshot}", page],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_python_api_mirrors_the_cli(finished_run, scifact_slice: Path) -> None:
    import gradir

    root, config, summary = finished_run
    run = _copy_run(root, "api")
    sections = load_config(config).model_dump()
    result = gradir.run(sections, out=run)
    stages = result.summary()["stages"]
    assert {s["status"] for s in stages.values()} == {"skipped"}
    assert stages["evaluate"]["summary"] == summary["stages"]["evaluate"]["summary"]


def test_init_writes_every_setting_with_its_default(tmp_path: Path, scifact_slice: Path) -> None:
    path = tmp_path / "configs" / "gradir.toml"
    path.parent.mkdir()
    result = run_cli("init", path, "--collection", scifact_slice)
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    loaded = load_config(path)
    assert Path(loaded.run.collection) == scifact_slice.resolve()
    defaults = PipelineConfig()
    assert loaded.model_dump(exclude={"run"}) == defaults.model_dump(exclude={"run"})
    for name, section in PipelineConfig.model_fields.items():
        assert f"[{name}]" in text
        for key in type(getattr(defaults, name)).model_fields:
            assert re.search(rf"^(# )?{key} = .*  # ", text, re.MULTILINE), key  # unset keys (no TOML null) commented out
    again = run_cli("init", path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert render_config(loaded).count("[") >= len(PipelineConfig.model_fields)


def test_keys_added_later_leave_earlier_runs_fingerprints_alone(tmp_path: Path, scifact_slice: Path) -> None:
    grade = PipelineConfig().grade
    assert "validation_retriever_weight" not in grade.fingerprint()
    assert grade.model_copy(update={"validation_retriever_weight": 0.0}).fingerprint()["validation_retriever_weight"] == 0.0
    # validation_top_k counts always: runs mined before it judged their held-out queries at top_k only
    assert PipelineConfig().mine.fingerprint() == {"retriever": "dense", "top_k": 8, "skip_top": 0, "validation_top_k": 20}
    path = tmp_path / "gradir.toml"
    path.write_text(f'[run]\ncollection = "{scifact_slice}"\n[mine]\nkeep_source = false\nrelative_margin = 0.05\n')
    assert load_config(path).mine.fingerprint() == {
        "retriever": "dense", "top_k": 8, "skip_top": 0, "validation_top_k": 20, "keep_source": False,
        "relative_margin": 0.05,
    }
    path.write_text(f'[run]\ncollection = "{scifact_slice}"\n[mine]\nrelative_margin = 1.5\n')
    with pytest.raises(Exception, match="relative_margin"):
        load_config(path)


def test_training_under_torchrun_with_two_processes(finished_run) -> None:
    """train.launcher runs the train stage as `torchrun -m gradir train` (2 CPU processes, gloo)."""
    root, config, _ = finished_run
    run = _copy_run(root, "torchrun")
    launched = Path(str(config).replace(".toml", ".torchrun.toml"))
    launched.write_text(config.read_text().replace("max_steps = 4", 'max_steps = 2\nlauncher = "torchrun --nproc_per_node=2"'))
    result = run_cli("run", launched, "--out", run, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    stages = json.loads(result.stdout)["stages"]
    assert {n for n, s in stages.items() if s["status"] == "ran"} == {"train", "evaluate", "report"}
    assert stages["train"]["summary"]["launcher"] == "torchrun --nproc_per_node=2"
    assert stages["train"]["summary"]["steps"] == 2
    assert json.loads((run / "model" / "training.json").read_text())["steps"] == 2
    assert not (run / "model" / ".staging").exists()


def test_the_report_says_when_a_gain_is_noise_and_when_grades_are_all_alike() -> None:
    from gradir.pipeline.findings import findings

    def data(p: float, mined: dict[str, int], log_points: int) -> dict:
        test = {"wins": 30, "losses": 20, "p_randomization": p}
        return {"comparison": {"base": {"ndcg@10": 0.60}, "tuned": {"ndcg@10": 0.62}, "paired_tests": {"ndcg@10": test}},
                "training": {"selection": {"output": "base"}}, "histograms": {"mined candidates": mined},
                "grader_check": None, "training_log": [{"loss": 1.0}] * log_points}

    noisy = findings(data(0.2, {"0": 3, "1": 98, "3": 16}, 1))
    assert "not significant" in noisy[0] and "p = 0.200" in noisy[0]
    assert any("the output is the base model" in s for s in noisy)
    assert any("98 of 117 mined candidates (84%) in grade 1" in s for s in noisy)
    assert any("logged 1 time(s)" in s for s in noisy)
    clear = findings(data(0.01, {"0": 40, "1": 40, "3": 37}, 12))
    assert "a significant gain" in clear[0]
    assert not any("mined candidates" in s or "logged" in s for s in clear)
    tied = data(0.5, {"0": 40, "1": 40, "3": 37}, 12)
    tied["training"]["selection"] = {"output": "base", "base": 0.98, "validation": {"queries": 11, "judged_pairs": 44},
                                     "epochs": [{"epoch": 1.0, "step": 8, "ndcg@10": 0.98}],
                                     "interpolation": [{"alpha": a, "ndcg@10": 0.98} for a in (0.0, 0.5, 1.0)]}
    assert any("could not choose" in s and "11 held-out queries" in s for s in findings(tied))
    tied["training"]["selection"]["interpolation"][1]["ndcg@10"] = 0.97  # one model scored differently: a choice
    assert not any("could not choose" in s for s in findings(tied))
    tied["training"]["selection"]["confirmation"] = {"level": 0.05, "alpha": 0.5, "ndcg@10": 0.99, "gain": 0.01,
                                                     "wins": 3, "losses": 1, "p": 0.3125, "kept": False}
    assert any("beat the base (0.9800) by +1.00 points" in s and "p = 0.312, level 0.05" in s for s in findings(tied))
