"""Reading graded relevance judgments (qrels).

Accepted layouts, tab- or space-separated, LF or CRLF, with or without a header line:

- BEIR: ``query-id  corpus-id  score``
- TREC: ``query-id  iteration  doc-id  grade``

Grades must be integers (trec_eval treats grade <= 0 as not relevant).
"""

from __future__ import annotations

import re
from pathlib import Path

from gradir.collections.problems import ProblemLog

Qrels = dict[str, dict[str, int]]
"""query id -> document id -> integer grade."""

_INTEGER = re.compile(r"^[+-]?\d+$")
_HEADER_WORDS = {
    "query-id", "query_id", "qid", "queryid", "query",
    "corpus-id", "corpus_id", "doc-id", "doc_id", "docid", "docno", "document-id",
    "score", "grade", "relevance", "label", "rel", "iteration", "iter", "q0",
}


def _is_header(fields: list[str]) -> bool:
    return all(f.strip().lower() in _HEADER_WORDS for f in fields)


def read_qrels(
    path: Path | str,
    log: ProblemLog,
    query_ids: set[str] | None = None,
    document_ids: set[str] | None = None,
) -> Qrels:
    """Read a qrels file, checking ids against the known queries and documents if given."""
    path = Path(path)
    if not path.is_file():
        raise log.fatal(path, None, "file not found")
    qrels: Qrels = {}
    first_seen: dict[tuple[str, str], int] = {}
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                log.add(path, line_no, f"invalid UTF-8 at byte {exc.start} of the line", "invalid utf-8")
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            fields = [f.strip() for f in fields]
            if line_no == 1 and _is_header(fields):
                continue
            if len(fields) == 3:
                qid, did, grade_text = fields
            elif len(fields) == 4:
                qid, _, did, grade_text = fields
            else:
                log.add(
                    path, line_no,
                    f"expected 3 fields (query-id, corpus-id, score) or 4 (TREC), found {len(fields)}",
                    "malformed qrels",
                )
                continue
            if not qid or not did:
                log.add(path, line_no, "empty query or document id", "missing field")
                continue
            if not _INTEGER.match(grade_text):
                log.add(path, line_no, f"grade '{grade_text}' is not an integer", "non-integer grade")
                continue
            if query_ids is not None and qid not in query_ids:
                log.add(path, line_no, f"unknown query id '{qid}' (not in the queries file)", "unknown query")
                continue
            if document_ids is not None and did not in document_ids:
                log.add(path, line_no, f"unknown document id '{did}' (not in the corpus)", "unknown document")
                continue
            key = (qid, did)
            if key in first_seen:
                log.add(
                    path, line_no,
                    f"duplicate judgment for query '{qid}' and document '{did}' (first at line {first_seen[key]})",
                    "duplicate id",
                )
                continue
            first_seen[key] = line_no
            qrels.setdefault(qid, {})[did] = int(grade_text)
    log.check()
    return qrels
