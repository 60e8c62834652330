"""Rejecting bad generated queries, each with a named reason.

- ``empty``: nothing left after cleaning;
- ``too short`` / ``too long``: fewer than ``min_chars`` characters, or more words than
  the query type allows (``MAX_WORDS``: keywords 10, web 16, title 20, others 40);
- ``copy of passage``: at least ``copy_min_words`` words and 80% of the query's word
  4-grams appear in the passage (a near-copy, not a query);
- ``prompt echo``: the answer repeats the prompt's scaffolding (``Passage:``, the instruction);
- ``copy of an example``: four distinct words or more, 80% of them from one few-shot example;
- ``repetitive``: six words or more, fewer than half of them distinct;
- ``duplicate``: the same normalised text as a query kept before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LABEL_PREFIX = re.compile(r"^\s*(question|claim|keywords?|title|query|search query|answer)\s*[:\-]\s*", re.I)
PROMPT_ECHO = re.compile(r"(passage\s*:|\{passage\}|\{examples\}|write (one|only|a short|three)|on one line)", re.I)
_WORD = re.compile(r"\w+")


def clean(text: str) -> str:
    """First non-empty line, without a leading label ("Question: ...") or wrapping quotes."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = _LABEL_PREFIX.sub("", lines[0]).strip()
    return line.strip("\"'`* ").strip()


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


MAX_WORDS = {"keywords": 10, "web": 16, "title": 20}


@dataclass
class QueryFilter:
    min_chars: int = 5
    max_words: int = 40
    copy_min_words: int = 6
    examples: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._example_keys = {" ".join(_words(e)) for e in self.examples}
        self._example_words = [set(_words(e)) for e in self.examples]

    @staticmethod
    def _copies(words: list[str], source: set[tuple[str, ...]]) -> bool:
        grams = _ngrams(words, 4)
        return bool(grams) and len(grams & source) / len(grams) >= 0.8

    def reject_reason(self, query: str, passage: str, query_type: str | None = None) -> str | None:
        if not query:
            return "empty"
        words = _words(query)
        if len(query) < self.min_chars or not words:
            return "too short"
        if len(words) > MAX_WORDS.get(query_type or "", self.max_words):
            return "too long"
        if PROMPT_ECHO.search(query):
            return "prompt echo"
        key = " ".join(words)
        distinct = set(words)
        if key in self._example_keys or (
            len(distinct) >= 4 and any(len(distinct & e) >= 0.8 * len(distinct) for e in self._example_words)
        ):
            return "copy of an example"
        if len(words) >= self.copy_min_words and self._copies(words, _ngrams(_words(passage), 4)):
            return "copy of passage"
        if len(words) >= 6 and len(set(words)) < len(words) / 2:
            return "repetitive"
        if key in self.seen:
            return "duplicate"
        self.seen.add(key)
        return None
