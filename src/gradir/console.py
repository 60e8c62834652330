"""Where gradir talks: logs and progress on stderr, JSON results on stdout.

On a terminal, progress is a live bar with count, elapsed time and ETA. When stderr is not
a terminal (CI, a log file, ``nohup``), a live bar would print nothing until the end, so
each task writes one plain line at most every ``GRADIR_PROGRESS_SECONDS`` (30 by default)
with done/total and ETA, and one line when it ends.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

err_console = Console(stderr=True, soft_wrap=True)
DEFAULT_LOG_SECONDS = 30.0


def progress() -> Progress:
    """A progress display on stderr: a live bar on a terminal, else plain timed log lines."""
    if not err_console.is_terminal:
        return LoggedProgress(float(os.environ.get("GRADIR_PROGRESS_SECONDS", DEFAULT_LOG_SECONDS)))
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


class LoggedProgress(Progress):
    """Rich's task bookkeeping (counts, speed, ETA) with no live display: a line per task every ``interval`` s."""

    def __init__(self, interval: float):
        super().__init__(console=err_console, disable=True)
        self.interval = interval
        self._last_line: dict[TaskID, float] = {}
        self._ended: set[TaskID] = set()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)

    def update(self, task_id: TaskID, **changes) -> None:
        super().update(task_id, **changes)
        self._log(task_id)

    def _log(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        if not task.visible or task_id in self._ended:
            return
        now = time.monotonic()
        last = self._last_line.setdefault(task_id, task.start_time or now)
        ended = task.total is not None and task.completed >= task.total
        if not ended and now - last < self.interval:
            return
        self._last_line[task_id] = now
        done = f"{task.completed:g}/{task.total:g}" if task.total is not None else f"{task.completed:g}"
        if ended:
            self._ended.add(task_id)
            tail = f"done in {timedelta(seconds=round(task.elapsed or 0))}"
        else:
            eta = task.time_remaining
            tail = f"{task.percentage:.0f}%, ETA {timedelta(seconds=round(eta)) if eta is not None else '?'}"
        err_console.print(f"{task.description}: {done}, {tail}", highlight=False)
