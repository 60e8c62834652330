from __future__ import annotations

from pathlib import Path

import pytest

from conftest import BAD, DATA, TINY, run_cli
from gradir.collections import load_collection, load_corpus
from gradir.errors import GradirError, InputError


def test_beir_folder_with_crlf_header_qrels_and_lf_headerless_qrels() -> None:
    collection = load_collection(TINY)
    assert len(collection.documents) == 6
    assert len(collection.queries) == 4
    assert collection.splits() == ["dev", "test"]
    assert collection.qrels("test") == {
        "q1": {"d1": 2, "d6": 0},
        "q2": {"d2": 2, "d3": 1},
        "q3": {"d5": 1},
    }
    assert collection.qrels("dev") == {"q4": {"d3": 2, "d5": 1}}
    assert list(collection.split_queries("test")) == ["q1", "q2", "q3"]


def test_titles_are_optional_and_joined_like_beir() -> None:
    collection = load_collection(TINY)
    assert collection.documents["d2"].title == ""
    assert collection.documents["d2"].full_text == collection.documents["d2"].text
    assert collection.documents["d1"].full_text.startswith("Vitamin D and bone health Vitamin D")


@pytest.mark.parametrize("name", ["corpus.csv", "corpus.parquet", "corpus_notitle.jsonl"])
def test_other_corpus_formats_read_the_same_documents(name: str) -> None:
    reference = load_corpus(TINY / "corpus.jsonl")
    documents = load_corpus(DATA / name)
    assert list(documents) == list(reference)
    for doc_id, doc in documents.items():
        assert doc.text == reference[doc_id].text
        if name != "corpus_notitle.jsonl":
            assert doc.title == reference[doc_id].title


def test_a_corpus_file_is_a_collection_without_queries() -> None:
    collection = load_collection(DATA / "corpus.parquet")
    assert len(collection.documents) == 6 and collection.queries == {}
    with pytest.raises(GradirError, match="no qrels"):
        collection.qrels("test")


def test_unknown_split_names_the_available_ones() -> None:
    with pytest.raises(GradirError, match=r"no qrels for split 'train' \(available: dev, test\)"):
        load_collection(TINY).qrels("train")


# (path under tests/data/bad/collections, text the message must hold: file, line and what is wrong)
BAD_CASES = [
    ("malformed_json", "corpus.jsonl:3: malformed JSON"),
    ("duplicate_doc_id", "corpus.jsonl:4: duplicate document id 'd1' (first at line 1)"),
    ("missing_text", "corpus.jsonl:2: missing field 'text'"),
    ("missing_id", "corpus.jsonl:5: missing field '_id'"),
    ("empty_text", "corpus.jsonl:6: empty text for document 'd6'"),
    ("text_not_string", "corpus.jsonl:1: field 'text' must be a string"),
    ("json_array_line", "corpus.jsonl:2: expected a JSON object"),
    ("invalid_utf8", "corpus.jsonl:3: invalid UTF-8"),
    ("empty_corpus", "corpus.jsonl: no documents found (the file is empty)"),
    ("duplicate_query_id", "queries.jsonl:5: duplicate query id 'q2'"),
    ("empty_query", "queries.jsonl:2: empty text for query 'q2'"),
    ("qrels_unknown_query", "test.tsv:3: unknown query id 'q9'"),
    ("qrels_unknown_document", "test.tsv:2: unknown document id 'd77'"),
    ("qrels_non_integer_grade", "test.tsv:3: grade '1.5' is not an integer"),
    ("qrels_non_numeric_grade", "test.tsv:1: grade 'high' is not an integer"),
    ("qrels_wrong_columns", "test.tsv:3: expected 3 fields"),
    ("qrels_duplicate_pair", "test.tsv:3: duplicate judgment for query 'q1' and document 'd1' (first at line 1)"),
    ("no_corpus", "no corpus file"),
    ("corpus_missing_column.csv", "corpus_missing_column.csv:1: missing column(s) text"),
    ("corpus_ragged.csv", "corpus_ragged.csv:3: 5 fields, header has 3"),
    ("corpus_bad_utf8.csv", "corpus_bad_utf8.csv:3: invalid UTF-8"),
    ("corpus_empty.csv", "corpus_empty.csv: file is empty"),
    ("corpus_missing_column.parquet", "corpus_missing_column.parquet: missing column(s) text"),
    ("corpus_duplicate.parquet", "corpus_duplicate.parquet: row 3: duplicate document id 'a'"),
    ("corpus_not_parquet.parquet", "not a readable Parquet file"),
    ("corpus.xml", "unsupported file type '.xml'"),
]


def _load_everything(path: Path, lenient: bool = False):
    collection = load_collection(path, lenient=lenient)
    for split in collection.splits():
        collection.qrels(split)
    return collection


@pytest.mark.parametrize(("name", "expected"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_names_file_line_and_problem(name: str, expected: str) -> None:
    with pytest.raises(GradirError) as info:
        _load_everything(BAD / "collections" / name)
    assert expected in str(info.value)


@pytest.mark.parametrize(("name", "expected"), BAD_CASES[:4] + BAD_CASES[11:14], ids=lambda v: str(v)[:30])
def test_cli_check_exits_2_without_traceback(name: str, expected: str) -> None:
    result = run_cli("check", "--collection", BAD / "collections" / name)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


LENIENT_CASES = [
    ("malformed_json", 5, "malformed json"),
    ("duplicate_doc_id", 5, "duplicate id"),
    ("invalid_utf8", 5, "invalid utf-8"),
    ("empty_text", 5, "empty text"),
]


@pytest.mark.parametrize(("name", "documents", "kind"), LENIENT_CASES)
def test_lenient_skips_bad_records_and_counts_them(name: str, documents: int, kind: str) -> None:
    collection = _load_everything(BAD / "collections" / name, lenient=True)
    assert len(collection.documents) == documents
    assert collection.log.summary() == {kind: 1}


def test_lenient_qrels_skip_unknown_ids_and_bad_grades() -> None:
    collection = _load_everything(BAD / "collections" / "qrels_unknown_query", lenient=True)
    assert collection.qrels("test") == {"q1": {"d1": 1}}
    assert collection.log.summary() == {"unknown query": 1}


def test_cli_check_lenient_reports_the_skips_as_json() -> None:
    import json

    result = run_cli("check", "--collection", BAD / "collections" / "duplicate_doc_id", "--lenient", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["documents"] == 5
    assert summary["skipped"] == {"duplicate id": 1}
    assert "skipped 1 bad record" in result.stderr


def test_an_error_lists_every_bad_line_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(f'{{"_id": "d{i}", "text": ""}}\n' for i in range(15)))
    with pytest.raises(InputError) as info:
        load_corpus(path)
    assert len(info.value.problems) == 15
    assert "and 5 more problem(s)" in str(info.value)


def test_a_collection_fingerprint_rereads_a_file_only_when_its_size_or_mtime_changes(tmp_path: Path) -> None:
    import os
    import shutil

    from gradir.pipeline.runner import collection_fingerprint

    collection = tmp_path / "tiny"
    shutil.copytree(TINY, collection)
    cache = tmp_path / "cache"
    first = collection_fingerprint(collection, cache)
    assert collection_fingerprint(collection, None) == first  # the store changes nothing but the cost
    corpus = collection / "corpus.jsonl"
    stat = corpus.stat()
    # Same size and mtime: the stored digest stands and the file is not read again...
    corpus.write_bytes(corpus.read_bytes().replace(b"a", b"b", 1))
    os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert collection_fingerprint(collection, cache) == first
    # ...a new modification time sends it to be read, and the new content gives a new fingerprint.
    os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    changed = collection_fingerprint(collection, cache)
    assert changed != first and changed == collection_fingerprint(collection, None)
