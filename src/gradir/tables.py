"""Writing record tables: Parquet (the default) or JSONL, chosen by the file's extension, atomically."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradir.atomic import atomic_path, atomic_write
from gradir.errors import GradirError


def write_table(path: Path | str, rows: Sequence[dict[str, Any]]) -> None:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with atomic_write(path) as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        with atomic_path(path) as tmp:
            pq.write_table(pa.Table.from_pylist(list(rows)), tmp)
    else:
        raise GradirError(f"{path}: unsupported output type '{suffix}' (use .parquet or .jsonl)")


def read_table(path: Path | str) -> list[dict[str, Any]]:
    """Read back a table gradir wrote itself (a run directory's files): Parquet or JSONL, one dict a row."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
