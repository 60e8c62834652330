"""Loading collections: a BEIR folder, or a single corpus file (JSONL, CSV, Parquet).

A BEIR folder holds ``corpus.<ext>``, ``queries.<ext>`` (optional for a corpus that
only feeds synthesis) and ``qrels/<split>.tsv``, where ``<ext>`` is one of
``jsonl``, ``parquet`` or ``csv``. Ids may be given as ``_id``, ``id`` or ``doc_id``
(the synthetic documents of ``gradir generate documents`` load as a corpus).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradir.collections.problems import ProblemLog
from gradir.collections.qrels import Qrels, read_qrels
from gradir.collections.records import Document, Query
from gradir.collections.rows import iter_rows, position_unit
from gradir.errors import GradirError

ID_FIELDS = ("_id", "id", "doc_id")
TABLE_EXTENSIONS = (".jsonl", ".parquet", ".csv")


def _find_table(root: Path, stem: str) -> Path | None:
    for ext in TABLE_EXTENSIONS:
        candidate = root / f"{stem}{ext}"
        if candidate.is_file():
            return candidate
    return None


def _record_id(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """The record's id as a string, or an error message."""
    for name in ID_FIELDS:
        if name in row and row[name] is not None:
            value = row[name]
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                return None, f"field '{name}' must be a string or an integer, found {type(value).__name__}"
            text = str(value).strip()
            return (text, None) if text else (None, f"field '{name}' is empty")
    return None, "missing field '_id' (or 'id')"


def _text_field(row: dict[str, Any], name: str, required: bool) -> tuple[str, str | None]:
    if name not in row or row[name] is None:
        return "", (f"missing field '{name}'" if required else None)
    value = row[name]
    if not isinstance(value, str):
        return "", f"field '{name}' must be a string, found {type(value).__name__}"
    return value, None


def _read_records(path: Path, log: ProblemLog, kind: str) -> list[tuple[int, str, str, str]]:
    """Read (position, id, title, text) records, reporting problems by position."""
    unit = position_unit(path)
    required = ("text",)
    records: list[tuple[int, str, str, str]] = []
    first_seen: dict[str, int] = {}
    for pos, row in iter_rows(path, log, required=required):
        record_id, error = _record_id(row)
        if error:
            log.add(path, pos, error, "missing field", unit)
            continue
        text, error = _text_field(row, "text", required=True)
        if error:
            log.add(path, pos, error, "missing field", unit)
            continue
        title, error = _text_field(row, "title", required=False) if kind == "document" else ("", None)
        if error:
            log.add(path, pos, error, "missing field", unit)
            continue
        if not text.strip() and not title.strip():
            log.add(path, pos, f"empty text for {kind} '{record_id}'", "empty text", unit)
            continue
        if record_id in first_seen:
            log.add(
                path, pos,
                f"duplicate {kind} id '{record_id}' (first at {unit} {first_seen[record_id]})",
                "duplicate id", unit,
            )
            continue
        first_seen[record_id] = pos
        records.append((pos, record_id, title, text))
    if not records and not log.pending():
        raise log.fatal(path, None, f"no {kind}s found (the file is empty)")
    log.check()
    if not records:
        raise log.fatal(path, None, f"no valid {kind}s left after skipping bad records")
    return records


def load_corpus(path: Path | str, log: ProblemLog | None = None) -> dict[str, Document]:
    """Read documents from a JSONL, CSV or Parquet file (fields ``_id``/``id``, ``text``, optional ``title``)."""
    log = ProblemLog() if log is None else log
    records = _read_records(Path(path), log, "document")
    return {rid: Document(rid, text, title) for _, rid, title, text in records}


def load_queries(path: Path | str, log: ProblemLog | None = None) -> dict[str, Query]:
    """Read queries from a JSONL, CSV or Parquet file (fields ``_id``/``id``, ``text``)."""
    log = ProblemLog() if log is None else log
    records = _read_records(Path(path), log, "query")
    return {rid: Query(rid, text) for _, rid, _, text in records}


@dataclass
class Collection:
    """Documents, queries and the judgment splits of one collection."""

    root: Path
    documents: dict[str, Document]
    queries: dict[str, Query]
    log: ProblemLog
    corpus_path: Path
    _qrels: dict[str, Qrels] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.root.name if self.root.is_dir() else self.root.stem

    def splits(self) -> list[str]:
        """The names of the qrels files in ``qrels/``."""
        qrels_dir = self.root / "qrels"
        return sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []

    def qrels(self, split: str = "test") -> Qrels:
        """The judgments of a split, validated against the corpus and queries."""
        if split not in self._qrels:
            path = self.root / "qrels" / f"{split}.tsv"
            if not path.is_file():
                available = ", ".join(self.splits()) or "none"
                raise GradirError(f"{self.root}: no qrels for split '{split}' (available: {available})")
            if not self.queries:
                raise GradirError(f"{self.root}: the collection has no queries file, needed to evaluate")
            self._qrels[split] = read_qrels(path, self.log, set(self.queries), set(self.documents))
        return self._qrels[split]

    def split_queries(self, split: str = "test") -> dict[str, Query]:
        """The queries that have judgments in a split, in the queries file's order."""
        judged = self.qrels(split)
        return {qid: q for qid, q in self.queries.items() if qid in judged}


LENIENT_HINT = (
    "to skip bad records and report them instead: --lenient (gradir run, eval, check and the other commands "
    "that read a collection) or [run] lenient = true in a pipeline config"
)


def load_collection(path: Path | str, lenient: bool = False) -> Collection:
    """Load a BEIR folder, or a single corpus file as a collection without queries."""
    root = Path(path)
    log = ProblemLog(lenient=lenient, hint=LENIENT_HINT)
    if root.is_file():
        return Collection(root, load_corpus(root, log), {}, log, root)
    if not root.is_dir():
        raise GradirError(f"{root}: no such collection (expected a BEIR folder or a corpus file)")
    corpus_path = _find_table(root, "corpus")
    if corpus_path is None:
        raise GradirError(f"{root}: no corpus file (expected corpus.jsonl, corpus.parquet or corpus.csv)")
    documents = load_corpus(corpus_path, log)
    queries_path = _find_table(root, "queries")
    queries = load_queries(queries_path, log) if queries_path else {}
    return Collection(root, documents, queries, log, corpus_path)
