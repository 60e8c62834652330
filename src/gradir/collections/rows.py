"""Row readers for JSONL, CSV/TSV and Parquet files.

Each reader yields ``(position, row)`` where position is the 1-based line (JSONL,
CSV) or row (Parquet) of the record, so every later problem can name where it is.
Rows that cannot be read at all (invalid UTF-8, malformed JSON) go to the
:class:`ProblemLog` and are not yielded.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gradir.collections.problems import ProblemLog

JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
CSV_SUFFIXES = {".csv", ".tsv"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
SUPPORTED_SUFFIXES = JSONL_SUFFIXES | CSV_SUFFIXES | PARQUET_SUFFIXES


def position_unit(path: Path) -> str:
    """What a position counts in this file: lines, or rows for Parquet."""
    return "row" if path.suffix.lower() in PARQUET_SUFFIXES else "line"


def iter_rows(path: Path, log: ProblemLog, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield the records of a JSONL, CSV/TSV or Parquet file with their positions."""
    path = Path(path)
    if not path.is_file():
        raise log.fatal(path, None, "file not found")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        yield from _iter_jsonl(path, log)
    elif suffix in CSV_SUFFIXES:
        yield from _iter_csv(path, log, required)
    elif suffix in PARQUET_SUFFIXES:
        yield from _iter_parquet(path, log, required)
    else:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise log.fatal(path, None, f"unsupported file type '{suffix}' (supported: {supported})")


def _iter_jsonl(path: Path, log: ProblemLog) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                log.add(path, line_no, f"invalid UTF-8 at byte {exc.start} of the line", "invalid utf-8")
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                log.add(path, line_no, f"malformed JSON: {exc.msg} (column {exc.colno})", "malformed json")
                continue
            if not isinstance(row, dict):
                log.add(path, line_no, f"expected a JSON object, found {type(row).__name__}", "malformed json")
                continue
            yield line_no, row


def _iter_csv(path: Path, log: ProblemLog, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    data = path.read_bytes()
    if not data.strip():
        raise log.fatal(path, None, "file is empty (expected a header line)")
    # Decode leniently to find every bad line, then report them by line number.
    text = data.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        found = ", ".join(header) or "none"
        raise log.fatal(path, 1, f"missing column(s) {', '.join(missing)} (found: {found})")
    start = 1
    for row in reader:
        end = reader.line_num
        line_no = start + 1
        start = end
        if None in row:
            log.add(path, line_no, f"{len(header) + len(row[None])} fields, header has {len(header)}", "malformed csv")
            continue
        if any(isinstance(v, str) and _has_surrogates(v) for v in row.values()):
            log.add(path, line_no, "invalid UTF-8", "invalid utf-8")
            continue
        yield line_no, row


def _has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _iter_parquet(path: Path, log: ProblemLog, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise log.fatal(path, None, f"not a readable Parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    missing = [c for c in required if c not in names]
    if missing:
        raise log.fatal(path, None, f"missing column(s) {', '.join(missing)} (found: {', '.join(names)})")
    row_no = 0
    for batch in parquet.iter_batches(batch_size=65536):
        for row in batch.to_pylist():
            row_no += 1
            yield row_no, row
