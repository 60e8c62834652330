"""Query and document synthesis with the embedded model, filters, and the round-trip filter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY, run_cli, shared_collection
from gradir.synth.filters import QueryFilter, clean, fit_length
from gradir.synth.records import read_synthetic_queries

PASSAGE = "Vitamin D supplementation increases bone mineral density in older adults with osteoporosis."


def test_clean_keeps_the_first_line_without_labels_or_quotes() -> None:
    assert clean('Question: "does vitamin d help bones?"\nSecond line') == "does vitamin d help bones?"
    assert clean("\n\n  ") == ""


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "empty"),
        ("abc", "too short"),
        ("word " * 41, "too long"),
        ("Passage: vitamin d and bones", "prompt echo"),
        ("Write one question about vitamin D", "prompt echo"),
        ("vitamin D supplementation increases bone mineral density in older adults", "copy of passage"),
    ],
)
def test_query_filter_reasons(query: str, reason: str) -> None:
    assert QueryFilter().reject_reason(query, PASSAGE) == reason


@pytest.mark.parametrize(
    ("answer", "query_type", "fitted"),
    [
        ("Does vitamin D lower the risk of hip fractures in older women? " + "The study followed them for years. " * 5,
         "question", "Does vitamin D lower the risk of hip fractures in older women?"),
        ("vitamin d, bone density, hip fracture, older women, supplements, calcium, trial, cohort, risk, dose, outcome",
         "keywords", "vitamin d, bone density, hip fracture, older women, supplements, calcium"),
        ("short enough query", "keywords", "short enough query"),
        (" ".join(["word"] * 50), "question", " ".join(["word"] * 50)),  # no boundary: left to be rejected
        ("vitamin d supplementation elderly women hip fracture risk reduction randomized trial outcomes mortality",
         "keywords", "vitamin d supplementation elderly women hip fracture risk reduction randomized"),  # terms: 10 words
    ],
)
def test_an_over_long_answer_keeps_its_first_sentence_or_leading_clauses(answer: str, query_type: str, fitted: str) -> None:
    assert fit_length(answer, query_type) == fitted


def test_query_filter_drops_duplicates_and_keeps_real_queries() -> None:
    check = QueryFilter()
    assert check.reject_reason("does vitamin d strengthen bones?", PASSAGE) is None
    assert check.reject_reason("Does Vitamin D strengthen bones", PASSAGE) == "duplicate"


def test_generate_queries_on_scifact_then_a_free_rerun(tmp_path: Path) -> None:
    scifact = shared_collection("scifact")
    out = tmp_path / "queries.parquet"
    args = ["generate", "queries", "--collection", scifact, "--out", out, "--max-docs", "2", "--per-doc", "1",
            "--types", "question,claim,keywords,title,web", "--json"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    # 2 passages x 5 types = 10 slots. SmolLM2-135M's answers depend on the llama.cpp build
    # (a wheel compiled on another CPU samples differently), so a slot may stay unfilled
    # after every retry; each slot must be either written or counted as unfilled.
    written = summary["written"]
    assert written + summary["unfilled"] == 10 and written >= 8, summary
    assert summary["llm_calls"] >= 10
    assert summary["slot_yield"] == pytest.approx(written / 10, abs=1e-4)
    assert summary["calls_per_query"] == pytest.approx(summary["llm_calls"] / written, abs=1e-3)
    queries = read_synthetic_queries(out)
    assert len(queries) == written
    types = {q.type for q in queries}
    assert types <= {"question", "claim", "keywords", "title", "web"} and len(types) >= 4
    from gradir.collections import load_corpus

    documents = load_corpus(scifact / "corpus.jsonl")
    check = QueryFilter()
    for q in queries:
        assert q.text.strip() and q.source_doc_id in documents and q.model.startswith("llamacpp:")
        assert check.reject_reason(q.text, documents[q.source_doc_id].full_text) is None

    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    rerun = json.loads(second.stdout)
    assert rerun["llm_calls"] == 0 and rerun["written"] == written
    assert rerun["seconds"] * 10 <= summary["seconds"]


def test_user_examples_and_documents_at_levels_and_round_trip(tmp_path: Path) -> None:
    examples = tmp_path / "examples.txt"
    examples.write_text("vitamin d bone density\nstatin side effects\n")
    queries = tmp_path / "queries.jsonl"
    made = run_cli("generate", "queries", "--collection", TINY, "--out", queries, "--max-docs", "2",
                   "--types", "web", "--examples", examples, "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["written"] == 2

    kept = tmp_path / "kept.jsonl"
    filtered = run_cli("filter", "--queries", queries, "--collection", TINY, "--out", kept,
                       "--top-k", "6", "--retriever", "bm25", "--json")
    assert filtered.returncode == 0, filtered.stderr
    result = json.loads(filtered.stdout)
    assert result["read"] == 2 and set(result["kept_fraction_by_type"]) == {"web"}
    assert len(kept.read_text().splitlines()) == result["written"]

    documents = tmp_path / "documents.jsonl"
    written = run_cli("generate", "documents", "--queries", queries, "--out", documents, "--levels", "3,0", "--json")
    assert written.returncode == 0, written.stderr
    summary = json.loads(written.stdout)
    assert summary["written"] + sum(summary["rejected"].values()) + summary["failed"] == 4
    rows = [json.loads(line) for line in documents.read_text().splitlines()]
    assert {r["level"] for r in rows} <= {3, 0} and all(r["text"].strip() for r in rows)


def test_generation_errors_exit_2(tmp_path: Path) -> None:
    bad_type = run_cli("generate", "queries", "--collection", TINY, "--out", tmp_path / "q.jsonl", "--types", "poem")
    assert bad_type.returncode == 2 and "unknown type(s) poem" in bad_type.stderr
    bad_llm = run_cli("generate", "queries", "--collection", TINY, "--out", tmp_path / "q.jsonl", "--llm", "openai:nowhere")
    assert bad_llm.returncode == 2 and "expected openai:URL@MODEL" in bad_llm.stderr
    (tmp_path / "q.jsonl").write_text('{"query_id": "a", "text": "x"}\n')
    bad_table = run_cli("generate", "documents", "--queries", tmp_path / "q.jsonl", "--out", tmp_path / "d.jsonl")
    assert bad_table.returncode == 2
    assert "q.jsonl:1: missing or empty field(s) type, source_doc_id" in bad_table.stderr
    assert not (tmp_path / "d.jsonl").exists()


def test_filter_rejects_copies_of_examples_and_repetition() -> None:
    check = QueryFilter(examples=["solid state battery electrolyte energy density"])
    assert check.reject_reason("solid state battery electrolyte electrolyte energy density", PASSAGE) == "copy of an example"
    assert check.reject_reason("obesity jim obesity jim obesity jim obesity", PASSAGE) == "repetitive"
    assert check.reject_reason("vitamin d bone density older adults", PASSAGE, "keywords") is None
    assert check.reject_reason(" ".join(f"w{i}" for i in range(12)), PASSAGE, "keywords") == "too long"
