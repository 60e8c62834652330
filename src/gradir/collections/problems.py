"""Collecting bad records: fail on them (strict, the default) or skip them (lenient)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from gradir.errors import InputError, Problem


def kinds_text(by_kind: dict[str, int]) -> str:
    """``2 empty text, 1 unknown document``: a lenient read's skips by kind, in one phrase."""
    return ", ".join(f"{count} {kind}" for kind, count in sorted(by_kind.items()))


def report_skipped(by_kind: dict[str, int]) -> None:
    """Say on stderr what a lenient read skipped (nothing when it skipped nothing)."""
    if by_kind:
        from gradir.console import err_console

        err_console.print(f"[yellow]lenient: skipped {sum(by_kind.values())} bad record(s): {kinds_text(by_kind)}[/yellow]")


class ProblemLog:
    """Records problems found while reading files.

    Strict mode gathers the problems of one file and raises an :class:`InputError`
    listing them when :meth:`check` is called at the end of that file. Lenient mode
    keeps them so the caller can report how many records were skipped and why.
    """

    def __init__(self, lenient: bool = False, hint: str | None = None):
        self.lenient = lenient
        self.hint = hint  # the last line of a strict refusal: how to skip instead
        self.problems: list[Problem] = []
        self._checked = 0

    def add(
        self, path: Path, line: int | None, reason: str, kind: str, unit: str = "line"
    ) -> None:
        self.problems.append(Problem(Path(path), line, reason, kind, unit))

    def fatal(self, path: Path, line: int | None, reason: str) -> InputError:
        """An error that no mode can skip (an unreadable file, a missing column)."""
        return InputError([Problem(Path(path), line, reason, "fatal")])

    def check(self) -> None:
        """Raise the problems found since the last check, unless lenient."""
        new = self.problems[self._checked :]
        self._checked = len(self.problems)
        if new and not self.lenient:
            raise InputError(new, self.hint)

    def pending(self) -> int:
        """How many problems were found since the last :meth:`check`."""
        return len(self.problems) - self._checked

    def skipped(self, listed: int = 5) -> dict:
        """What a lenient read skipped: the count, the count by kind and the first reasons (empty when nothing)."""
        if not self.problems:
            return {}
        return {"records": len(self.problems), "by_kind": self.summary(), "first": [str(p) for p in self.problems[:listed]]}

    def summary(self) -> dict[str, int]:
        """How many records were skipped, by kind of problem."""
        return dict(Counter(p.kind for p in self.problems))

    def __len__(self) -> int:
        return len(self.problems)
