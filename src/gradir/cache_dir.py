"""Where gradir keeps what it can reuse across runs: LLM calls, embeddings, model copies, file digests."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$GRADIR_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradir``, else ``~/.cache/gradir``."""
    if env := os.environ.get("GRADIR_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gradir"
