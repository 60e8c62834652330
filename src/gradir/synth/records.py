"""Records of the synthesis stages and reading them back."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from gradir.collections.problems import ProblemLog
from gradir.collections.rows import iter_rows, position_unit


@dataclass(frozen=True, slots=True)
class SyntheticQuery:
    query_id: str
    text: str
    type: str
    source_doc_id: str
    prompt: str
    model: str
    seed: int


@dataclass(frozen=True, slots=True)
class SyntheticDocument:
    doc_id: str
    query_id: str
    query_text: str
    text: str
    level: int
    model: str
    seed: int


def as_rows(records) -> list[dict]:
    return [asdict(r) for r in records]


def read_synthetic_queries(path: Path | str) -> list[SyntheticQuery]:
    """Read a queries table written by ``gradir generate queries`` (or made by hand)."""
    path = Path(path)
    log = ProblemLog()
    unit = position_unit(path)
    required = ("query_id", "text", "type", "source_doc_id")
    queries: list[SyntheticQuery] = []
    seen: dict[str, int] = {}
    for pos, row in iter_rows(path, log, required=required):
        missing = [c for c in required if not isinstance(row.get(c), (str, int)) or not str(row.get(c)).strip()]
        if missing:
            log.add(path, pos, f"missing or empty field(s) {', '.join(missing)}", "missing field", unit)
            continue
        qid = str(row["query_id"])
        if qid in seen:
            log.add(path, pos, f"duplicate query id '{qid}' (first at {unit} {seen[qid]})", "duplicate id", unit)
            continue
        seen[qid] = pos
        queries.append(
            SyntheticQuery(
                qid, str(row["text"]), str(row["type"]), str(row["source_doc_id"]),
                str(row.get("prompt") or row["type"]), str(row.get("model") or "unknown"), int(row.get("seed") or 0),
            )
        )
    log.check()
    if not queries:
        raise log.fatal(path, None, "no queries found")
    return queries


def read_synthetic_documents(path: Path | str) -> list[SyntheticDocument]:
    """Read a documents table written by ``gradir generate documents``."""
    path = Path(path)
    log = ProblemLog()
    unit = position_unit(path)
    required = ("doc_id", "query_id", "query_text", "text", "level")
    documents: list[SyntheticDocument] = []
    for pos, row in iter_rows(path, log, required=required):
        missing = [c for c in required if row.get(c) is None or not str(row.get(c)).strip()]
        if missing:
            log.add(path, pos, f"missing or empty field(s) {', '.join(missing)}", "missing field", unit)
            continue
        try:
            level = int(row["level"])
        except (TypeError, ValueError):
            log.add(path, pos, f"level '{row['level']}' is not an integer", "non-integer grade", unit)
            continue
        if not 0 <= level <= 3:
            log.add(path, pos, f"level {level} is outside 0..3", "bad label", unit)
            continue
        documents.append(
            SyntheticDocument(str(row["doc_id"]), str(row["query_id"]), str(row["query_text"]), str(row["text"]),
                              level, str(row.get("model") or "unknown"), int(row.get("seed") or 0))
        )
    log.check()
    if not documents:
        raise log.fatal(path, None, "no documents found")
    return documents
