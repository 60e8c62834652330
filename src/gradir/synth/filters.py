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


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
_CLAUSE_END = re.compile(r"\s*[,;:\u2013\u2014]\s*|\s+-\s+")


def fit_length(text: str, query_type: str | None = None, max_words: int = 40) -> str:
    """A query over its type's word limit, cut to its first sentence, else to its leading clauses.

    A small LLM often writes a good query and then keeps going ("Does X cause Y? This
    study ..."; "vitamin d, bone density, elderly, fractures, ..."): keeping the first
    sentence, or as many leading comma-separated parts as fit, saves the query instead
    of discarding it. Keyword and web queries are strings of terms, not sentences: with
    no boundary inside the limit, their first ``limit`` words are the query. Any other
    text with no boundary inside the limit is returned unchanged (and then rejected as
    too long).
    """
    limit = MAX_WORDS.get(query_type or "", max_words)
    if len(_words(text)) <= limit:
        return text
    first = _SENTENCE_END.split(text, maxsplit=1)[0].strip()
    if 3 <= len(_words(first)) <= limit:
        return first
    kept = ""
    for part in _CLAUSE_END.split(first):
        candidate = f"{kept}, {part}" if kept else part
        if len(_words(candidate)) > limit:
            break
        kept = candidate
    if len(_words(kept)) >= 3:
        return kept
    if query_type in TERM_TYPES:
        return _first_words(text, limit)
    return text


def _first_words(text: str, limit: int) -> str:
    """The text up to the end of its ``limit``-th word (punctuation inside the words kept)."""
    ends = [m.end() for m in _WORD.finditer(text)]
    return text[: ends[limit - 1]].strip() if len(ends) > limit else text


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


MAX_WORDS = {"keywords": 10, "web": 16, "title": 20}
TERM_TYPES = ("keywords", "web")  # queries that are strings of terms: cut at the word limit when nothing else fits


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
