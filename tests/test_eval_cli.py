from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytrec_eval

from conftest import BAD, TINY, run_cli, shared_collection
from gradir.collections import load_collection
from gradir.evaluation import read_run

KEYS = {"ndcg@10", "recall@100", "mrr@10", "map@100"}


def _trec_eval_on_file(collection: Path, split: str, run_path: Path) -> dict[str, float]:
    """trec_eval's own figures for a written run file, averaged over the judged queries."""
    qrels = load_collection(collection).qrels(split)
    run = read_run(run_path)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "map_cut.100"}).evaluate(run)
    assert set(per_query) == set(qrels), "every judged query must be in the run"
    return {
        "ndcg@10": sum(q["ndcg_cut_10"] for q in per_query.values()) / len(per_query),
        "recall@100": sum(q["recall_100"] for q in per_query.values()) / len(per_query),
        "map@100": sum(q["map_cut_100"] for q in per_query.values()) / len(per_query),
    }


@pytest.mark.parametrize(
    "command",
    [[], ["eval"], ["compare"], ["check"], ["judgments"], ["judgments", "from-qrels"], ["train"], ["train-reranker"],
     ["generate"], ["generate", "queries"], ["generate", "documents"], ["filter"], ["mine"], ["grade"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


@pytest.mark.parametrize("retriever", ["dense", "bm25", "hybrid"])
def test_eval_writes_metrics_per_query_and_a_run_that_trec_eval_agrees_with(tmp_path: Path, retriever: str) -> None:
    out = tmp_path / "out"
    result = run_cli("eval", "--collection", TINY, "--retriever", retriever, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert KEYS <= set(printed)
    saved = json.loads((out / "metrics.json").read_text())
    assert {k: saved[k] for k in KEYS} == {k: printed[k] for k in KEYS}
    per_query = (out / "per_query.tsv").read_text().splitlines()
    assert per_query[0].split("\t") == ["query_id", "ndcg@10", "recall@100", "mrr@10", "map@100"]
    assert len(per_query) == 1 + 3
    for name, value in _trec_eval_on_file(TINY, "test", out / "run.trec").items():
        assert value == pytest.approx(saved[name], abs=1e-6)


def test_eval_on_another_split_plain_output_and_progress_lines_in_a_log(tmp_path: Path) -> None:
    # stderr is a pipe here, as in CI or a log file: progress comes as plain lines, not a bar.
    env = {"GRADIR_CACHE_DIR": str(tmp_path / "cache"), "GRADIR_PROGRESS_SECONDS": "0"}
    result = run_cli("eval", "--collection", TINY, "--split", "dev", env=env)
    assert result.returncode == 0, result.stderr
    assert "ndcg@10" in result.stdout and "dev" in result.stdout
    assert re.search(r"^encoding documents: (\d+)/\1, done in 0:00:\d\d$", result.stderr, re.MULTILINE), result.stderr


def test_eval_progress_on_a_terminal_is_a_live_bar_with_eta(tmp_path: Path) -> None:
    # stderr is a pseudo-terminal here, as for a user at a shell: a bar, not plain lines.
    terminal, child_side = pty.openpty()
    env = {**os.environ, "GRADIR_CACHE_DIR": str(tmp_path / "cache"), "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("TTY_COMPATIBLE", None)
    child = subprocess.Popen([sys.executable, "-m", "gradir", "eval", "--collection", str(TINY)],
                             stdout=subprocess.PIPE, stderr=child_side, env=env)
    os.close(child_side)
    shown = bytearray()
    while True:  # read while it runs: a full terminal buffer would block the child
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the child closed its side
            break
        if not chunk:
            break
        shown += chunk
    stdout = child.communicate(timeout=600)[0].decode()
    os.close(terminal)
    screen = shown.decode(errors="replace")
    assert child.returncode == 0, screen
    assert "ndcg@10" in stdout
    assert re.search(r"encoding documents .*━.*\d+/\d+.*ETA", screen), screen
    assert ", done in" not in screen  # the log-line form is for non-terminals only


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--collection", TINY, "--retriever", "sparse"], "unknown retriever 'sparse'"),
        (["--collection", TINY, "--split", "train"], "no qrels for split 'train'"),
        (["--collection", TINY / "missing"], "no such collection"),
        (["--collection", TINY, "--model", "/nonexistent/model"], "no such model directory"),
        (["--collection", BAD / "collections" / "qrels_unknown_document"], "test.tsv:2: unknown document id 'd77'"),
    ],
)
def test_eval_errors_exit_2_with_a_message(args: list, message: str) -> None:
    result = run_cli("eval", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_nfcorpus_reference_figure_and_cached_rerun(tmp_path: Path) -> None:
    """The default model on NFCorpus test gives the published MTEB nDCG@10 (31.59); a rerun is cached."""
    nfcorpus = shared_collection("nfcorpus")
    first = run_cli("eval", "--collection", nfcorpus, "--out", tmp_path / "first", "--json")
    assert first.returncode == 0, first.stderr
    metrics = json.loads(first.stdout)
    assert metrics["ndcg@10"] == pytest.approx(0.3159, abs=0.001)
    assert metrics["queries"] == 323 and metrics["encoded_texts"] > 3600
    for name, value in _trec_eval_on_file(nfcorpus, "test", tmp_path / "first" / "run.trec").items():
        assert value == pytest.approx(metrics[name], abs=1e-6)

    second = run_cli("eval", "--collection", nfcorpus, "--json")
    assert second.returncode == 0, second.stderr
    cached = json.loads(second.stdout)
    assert cached["encoded_texts"] == 0 and cached["cached_texts"] == metrics["encoded_texts"]
    assert {k: cached[k] for k in KEYS} == {k: metrics[k] for k in KEYS}
    assert cached["seconds"] < metrics["seconds"] / 5
