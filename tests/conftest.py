"""Shared test set-up: offline models, a private embedding cache, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny_beir"
BAD = DATA / "bad"
SHARED_BEIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test session gets its own embedding cache, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "gradir-cache"
    monkeypatch.setenv("GRADIR_CACHE_DIR", str(cache))
    return cache


def run_cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``gradir`` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "gradir", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=1200,
    )


def shared_collection(name: str) -> Path:
    path = SHARED_BEIR / name
    if not path.is_dir():
        pytest.fail(f"{path} is missing: the tests need ../shared/data beside the repository")
    return path
