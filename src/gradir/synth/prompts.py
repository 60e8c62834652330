"""Prompt templates (text files in ``gradir/prompts``) and their few-shot examples.

A query prompt has one slot, ``{passage}``. Few-shot examples (Promptagator-style) are
earlier turns of the chat: the prompt on the example's passage as the user's turn, the
example query as the assistant's answer, which small chat models follow far better than
examples pasted into one message. Examples come from a user's file when given, else from
the built-in ``prompts/queries/examples.jsonl``. A user's file is JSONL with ``query``
(or ``text``) and optional ``type`` and ``passage``, or plain text with one example query
a line; examples without a passage are listed in the instruction instead.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from gradir.collections.problems import ProblemLog
from gradir.collections.rows import iter_rows
from gradir.errors import GradirError

QUERY_TYPE_NAMES = ("question", "claim", "keywords", "title", "web")


def prompt_file(*parts: str) -> str:
    return resources.files("gradir").joinpath("prompts", *parts).read_text(encoding="utf-8")


def query_template(query_type: str) -> str:
    try:
        return prompt_file("queries", f"{query_type}.txt")
    except FileNotFoundError:
        raise GradirError(f"unknown query type '{query_type}' (choose from {', '.join(QUERY_TYPE_NAMES)})") from None


def document_template() -> tuple[str, dict[int, str]]:
    levels = json.loads(prompt_file("documents", "levels.json"))
    return prompt_file("documents", "level.txt"), {int(k): v for k, v in levels.items()}


Example = tuple[str | None, str | None, str]  # (type, passage, query)


def builtin_examples() -> list[Example]:
    rows = [json.loads(line) for line in prompt_file("queries", "examples.jsonl").splitlines() if line.strip()]
    return [(r["type"], r["passage"], r["query"]) for r in rows]


def read_examples(path: Path | str) -> list[Example]:
    """A user's example queries: JSONL rows (query/text, optional type and passage) or one query a line."""
    path = Path(path)
    if not path.is_file():
        raise GradirError(f"{path}: examples file not found")
    if path.suffix.lower() in (".jsonl", ".json", ".csv", ".parquet"):
        log = ProblemLog()
        examples: list[Example] = []
        for pos, row in iter_rows(path, log):
            query = row.get("query") or row.get("text")
            if not isinstance(query, str) or not query.strip():
                log.add(path, pos, "missing field 'query' (or 'text')", "missing field")
                continue
            examples.append((row.get("type"), row.get("passage"), query.strip()))
        log.check()
    else:
        examples = [(None, None, line.strip()) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not examples:
        raise GradirError(f"{path}: no example queries found")
    return examples


def examples_for(examples: list[Example], query_type: str, count: int) -> list[Example]:
    """The examples of one query type (or untyped ones, or any), at most ``count``."""
    chosen = [e for e in examples if e[0] == query_type] or [e for e in examples if e[0] is None] or examples
    return chosen[:count]


def query_messages(template: str, examples: list[Example], passage: str, passage_words: int = 80) -> list[dict[str, str]]:
    """The chat for one passage: example turns first, then the passage to write a query for."""
    messages: list[dict[str, str]] = []
    bare = [query for _, example_passage, query in examples if not example_passage]
    for _, example_passage, query in examples:
        if example_passage:
            short = " ".join(example_passage.split()[:passage_words])
            messages += [
                {"role": "user", "content": template.format(passage=short)},
                {"role": "assistant", "content": query},
            ]
    final = template.format(passage=passage)
    if bare:
        final = "Examples of the queries wanted: " + "; ".join(bare) + "\n\n" + final
    messages.append({"role": "user", "content": final})
    return messages
