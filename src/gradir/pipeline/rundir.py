"""A run directory: its files, the state of each stage, the lock and the log.

``state.json`` records, per stage, the fingerprint of its inputs and settings, whether
it is running or done, when, how long it took and its summary; it is rewritten
atomically at each change. ``run.lock`` holds an exclusive ``flock`` while a run works
in the directory: the kernel releases it when the process dies, so a lock left by a
killed run is detected (the lock is free, the pid in the file is gone) and taken over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, TextIO

from gradir.atomic import write_text_atomic
from gradir.errors import GradirError

from gradir.pipeline.files import LOCK, LOG, STATE


class RunLocked(GradirError):
    """Another live process holds the run directory."""


class RunDirectory:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._lock_handle: TextIO | None = None
        self.took_over_from: str | None = None

    def path(self, name: str) -> Path:
        return self.root / name

    # --- state -------------------------------------------------------------------
    def state(self) -> dict[str, dict[str, Any]]:
        path = self.path(STATE)
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("stages", {})
        except (json.JSONDecodeError, AttributeError):
            raise GradirError(f"{path}: not a gradir state file (invalid JSON); move it away to start over") from None

    def record(self, stage: str, **entry: Any) -> None:
        stages = self.state()
        stages[stage] = {**stages.get(stage, {}), **entry}
        write_text_atomic(self.path(STATE), json.dumps({"stages": stages}, indent=2) + "\n")

    def forget(self, stage: str) -> None:
        stages = self.state()
        if stages.pop(stage, None) is not None:
            write_text_atomic(self.path(STATE), json.dumps({"stages": stages}, indent=2) + "\n")

    # --- log -----------------------------------------------------------------------
    def log(self, message: str) -> None:
        with open(self.path(LOG), "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    # --- lock ----------------------------------------------------------------------
    def acquire(self) -> None:
        """Hold the run's lock until :meth:`release` (or the process ends)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(LOCK)
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunLocked(
                f"{self.root}: the run directory is in use by {holder} ({path} is locked); "
                "wait for that run to finish or stop it"
            ) from None
        handle.seek(0)
        previous = handle.read().strip()
        if previous:
            self.took_over_from = previous
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._lock_handle = handle

    def release(self) -> None:
        if self._lock_handle is None:
            return
        self._lock_handle.seek(0)
        self._lock_handle.truncate()
        fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
        self._lock_handle.close()
        self._lock_handle = None

    def __enter__(self) -> RunDirectory:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
