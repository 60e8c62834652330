"""Every malformed input under tests/data/bad/: exit code 2, a message naming the file and the
line or key and what is wrong, no traceback, and nothing written where the output would go.

The commands run in process through the CLI's own entry point (``gradir.cli.main``), which
is what the installed ``gradir`` script calls; one subprocess run checks the script itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import BAD, TINY, run_cli
from test_collections import BAD_CASES

from gradir.cli import main

CONFIG_CASES = [
    ("unknown_key.toml", "unknown_key.toml:6: train.bogus: unknown key"),
    ("retired_key.toml", "retired_key.toml:6: train.validation_documents: no longer used (validation ranks each held-out"),
    ("unknown_section.toml", "unknown_section.toml:4: trian: unknown key"),
    ("section_not_a_table.toml", "section_not_a_table.toml:1: train: Input should be a valid dictionary"),
    ("wrong_type.toml", "wrong_type.toml:5: generate.passages: Input should be a valid integer"),
    ("zero_batch_size.toml", "zero_batch_size.toml:5: train.batch_size: Input should be greater than or equal to 1 (got 0)"),
    ("negative_learning_rate.toml", "negative_learning_rate.toml:5: train.learning_rate: Input should be greater than 0"),
    ("unknown_loss.toml", "unknown_loss.toml:5: train.loss: Input should be 'infonce', 'bixse'"),
    ("unknown_query_type.toml", "unknown_query_type.toml:5: generate.types: Input should be 'question'"),
    ("threshold_out_of_range.toml", "threshold_out_of_range.toml:5: train.threshold: Input should be less than or equal to 3 (got 7)"),
    ("skip_top_beyond_top_k.toml", "skip_top_beyond_top_k.toml:6: mine.skip_top: 5 leaves no candidate of mine.top_k = 3"),
    ("level_grader_without_documents.toml", 'level_grader_without_documents.toml:5: grade.grader: grader "level" needs documents.enabled = true'),
    ("mini_batch_larger_than_batch.toml", "mini_batch_larger_than_batch.toml:6: train.mini_batch_size: 8 is larger than train.batch_size = 4"),
    ("unknown_backend.toml", "unknown_backend.toml:5: llm.backend: unknown backend 'gpt4'"),
    ("openai_without_model.toml", "openai_without_model.toml:5: llm.backend: expected openai:URL@MODEL"),
    ("not_toml.toml", "not_toml.toml: not valid TOML: Illegal character '\\n' (at line 5, column 14)"),
    ("missing_collection.toml", "missing_collection.toml:2: run.collection:"),
    ("no_collection.toml", "no_collection.toml:1: run.collection: no collection given"),
    ("unknown_eval_split.toml", "unknown_eval_split.toml:5: eval.split:"),
]

JUDGMENT_CASES = [
    ("malformed_json.jsonl", "malformed_json.jsonl:2: malformed JSON"),
    ("missing_grade.jsonl", "missing_grade.jsonl:1: missing field(s) grade"),
    ("grade_not_integer.jsonl", "grade_not_integer.jsonl:1: grade '1.5' is not an integer"),
    ("grade_not_numeric.jsonl", "grade_not_numeric.jsonl:2: grade 'high' is not an integer"),
    ("p_relevant_out_of_range.jsonl", "p_relevant_out_of_range.jsonl:1: p_relevant '1.7' is not a number in [0, 1]"),
    ("unknown_document.jsonl", "unknown_document.jsonl:2: unknown document id 'd99' (not in the corpus)"),
    ("duplicate_pair.jsonl", "duplicate_pair.jsonl:2: duplicate judgment for query 'q1' and document 'd1' (line 1)"),
    ("empty.jsonl", "empty.jsonl: no judgments found"),
    ("empty_query_text.jsonl", "empty_query_text.jsonl:1: empty query_text for query 'q1'"),
    ("missing_column.csv", "missing_column.csv:1: missing column(s) p_relevant"),
]


def invoke(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str | Path) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["gradir", *map(str, args)])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


def test_the_folder_holds_at_least_25_cases() -> None:
    cases = [p for p in BAD.rglob("*") if p.parent.name in ("collections", "configs", "judgments")]
    assert len(cases) >= 25
    assert {p.name for p in (BAD / "configs").iterdir()} == {name for name, _ in CONFIG_CASES}
    assert {p.name for p in (BAD / "judgments").iterdir()} == {name for name, _ in JUDGMENT_CASES}


@pytest.mark.parametrize(("name", "expected"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config(name: str, expected: str, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    code, err = invoke(capsys, monkeypatch, "run", BAD / "configs" / name, "--out", out)
    assert code == 2
    assert expected in " ".join(err.split()) or expected in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(("name", "expected"), JUDGMENT_CASES, ids=[c[0] for c in JUDGMENT_CASES])
def test_bad_judgments(name: str, expected: str, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "model"
    code, err = invoke(capsys, monkeypatch, "train", "--judgments", BAD / "judgments" / name,
                       "--collection", TINY, "--loss", "bixse", "--out", out)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(("name", "expected"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_collection_stops_a_run_before_it_writes(name: str, expected: str, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    code, err = invoke(capsys, monkeypatch, "run", "--collection", BAD / "collections" / name, "--out", out)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err
    assert not out.exists()


def test_the_installed_command_reports_a_bad_config_the_same_way(tmp_path: Path) -> None:
    result = run_cli("run", BAD / "configs" / "unknown_key.toml", "--out", tmp_path / "run")
    assert result.returncode == 2
    assert "unknown_key.toml:6: train.bogus: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
