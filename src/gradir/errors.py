"""Errors that gradir reports to users as a message, never as a traceback.

Every expected mistake (a malformed file, an unknown id, a bad option) raises a
:class:`GradirError`; the CLI prints its message on stderr and exits with code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXIT_USAGE = 2


class GradirError(Exception):
    """A user-facing error: the message says what is wrong and where."""

    exit_code: int = EXIT_USAGE


@dataclass(frozen=True)
class Problem:
    """One bad record: the file, its line (or row) and what is wrong with it."""

    path: Path
    line: int | None
    reason: str
    kind: str = "invalid"
    unit: str = "line"

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.reason}"
        if self.unit == "line":
            return f"{self.path}:{self.line}: {self.reason}"
        return f"{self.path}: {self.unit} {self.line}: {self.reason}"


class InputError(GradirError):
    """One or more bad records in an input file.

    The message lists the first problems (file:line: reason) and how many more
    there are, so a user can fix a file in one pass rather than one error at a time.
    """

    max_listed = 10

    def __init__(self, problems: list[Problem], hint: str | None = None):
        if not problems:
            raise ValueError("InputError needs at least one problem")
        self.problems = problems
        lines = [str(p) for p in problems[: self.max_listed]]
        extra = len(problems) - self.max_listed
        if extra > 0:
            lines.append(f"... and {extra} more problem(s)")
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))

    @classmethod
    def single(cls, path: Path | str, line: int | None, reason: str) -> "InputError":
        return cls([Problem(Path(path), line, reason)])
