"""TREC run files: ``query-id Q0 doc-id rank score tag``, one line a retrieved document."""

from __future__ import annotations

from pathlib import Path

from gradir.atomic import atomic_write
from gradir.collections.problems import ProblemLog
from gradir.retrieval.run import Run, top_ranked


def write_run(path: Path | str, run: Run, tag: str = "gradir") -> None:
    """Write a run atomically; scores keep full precision so re-scoring the file gives the same figures."""
    with atomic_write(path) as handle:
        for qid, scores in run.items():
            for rank, (did, score) in enumerate(top_ranked(scores), start=1):
                handle.write(f"{qid} Q0 {did} {rank} {score!r} {tag}\n")


def read_run(path: Path | str, log: ProblemLog | None = None) -> Run:
    """Read a TREC run file (six whitespace-separated fields a line)."""
    path = Path(path)
    log = ProblemLog() if log is None else log
    if not path.is_file():
        raise log.fatal(path, None, "run file not found")
    run: Run = {}
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                fields = raw.decode("utf-8").split()
            except UnicodeDecodeError as exc:
                log.add(path, line_no, f"invalid UTF-8 at byte {exc.start} of the line", "invalid utf-8")
                continue
            if not fields:
                continue
            if len(fields) != 6:
                log.add(path, line_no, f"expected 6 fields (qid Q0 docid rank score tag), found {len(fields)}", "malformed run")
                continue
            qid, _, did, _, score_text, _ = fields
            try:
                score = float(score_text)
            except ValueError:
                log.add(path, line_no, f"score '{score_text}' is not a number", "malformed run")
                continue
            scores = run.setdefault(qid, {})
            if did in scores:
                log.add(path, line_no, f"document '{did}' appears twice for query '{qid}'", "duplicate id")
                continue
            scores[did] = score
    log.check()
    if not run:
        raise log.fatal(path, None, "the run file is empty")
    return run
