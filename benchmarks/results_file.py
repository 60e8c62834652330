"""The one way every benchmark script here records its figures in benchmarks/RESULTS.md.

A section is ``## title (date)``, the command that reproduces it, the machine, a line
or two on the data, and the table; it is appended atomically, so an interrupted script
never leaves RESULTS.md half-written.
"""

from __future__ import annotations

import os
import platform
from datetime import date
from pathlib import Path

from gradir.atomic import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine_description(accelerator: str = "CPU") -> str:
    """``x86_64, 2 cores, CPU, Python 3.11.7``: what a figure was measured on."""
    return f"{platform.machine()}, {os.cpu_count()} cores, {accelerator}, Python {platform.python_version()}"


def append_section(title: str, command: str, details: str, table: str, machine: str | None = None) -> None:
    """Append one dated section to RESULTS.md (atomically: written in full or not at all)."""
    section = (
        f"\n## {title} ({date.today().isoformat()})\n\n"
        f"Command: `{command}`  \n"
        f"Machine: {machine or machine_description()}  \n"
        f"{details}\n\n"
        f"{table}\n"
    )
    write_text_atomic(RESULTS, RESULTS.read_text(encoding="utf-8") + section)
